/**
 * The one source of truth for mtpd's configuration: a zod schema that owns the defaults, the
 * documentation (`describe`) and the JSON Schema it emits. Every object is strict, so a
 * misspelled key is an error that names it.
 */
import { z } from 'zod';

export const CONFIG_VERSION = 1;

const positiveInt = z.number().int().positive();

export const scheduleSchema = z
  .strictObject({
    iterations: positiveInt.optional().describe('length of the schedule in optimizer steps (exclusive with epochs)'),
    epochs: z.number().positive().optional().describe('length of the schedule in passes over the training set'),
    optimizer: z.enum(['sgd', 'adamw']).default('sgd'),
    lr: z.number().positive().default(0.01).describe('base learning rate (for the configured batch size)'),
    momentum: z.number().min(0).max(1).default(0.9),
    nesterov: z.boolean().default(false),
    weightDecay: z.number().min(0).default(1e-4),
    warmupIterations: z.number().int().min(0).default(100).describe('linear warmup from warmupFactor * lr'),
    warmupFactor: z.number().min(0).max(1).default(0.001),
    policy: z.enum(['step', 'cosine', 'linear', 'constant']).default('step'),
    milestones: z.array(z.number().gt(0).lt(1)).default([8 / 12, 11 / 12]).describe('step policy: fractions of the schedule where the LR drops'),
    gamma: z.number().positive().max(1).default(0.1),
    clipGradNorm: z.number().positive().nullable().default(35).describe('max gradient norm; null to disable'),
    amp: z
      .boolean()
      .default(false)
      .describe(
        'mixed precision, as torch.autocast: the forward passes of the student, the teachers and the cost matrix under autocast, the losses in float32; on CUDA float16 with a dynamic loss scaler (skipped steps when gradients overflow), on the CPU bfloat16 without one (fast where the CPU has AVX-512 BF16 or AMX, see `mtpd info`; a warning where it does not); results differ from float32 by bfloat16/float16 rounding',
      ),
  })
  .refine((s) => !(s.iterations !== undefined && s.epochs !== undefined), { message: 'give iterations or epochs, not both' });

export const modelSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'names use letters, digits, _ . -').describe('unique name of this model in the run'),
  arch: z.string().describe('detector builder, e.g. retinanet_resnet50_fpn, retinanet_resnet18_fpn, retinanet_swin_t_fpn, maskrcnn_resnet50_fpn, maskrcnn_resnet18_fpn'),
  widthMult: z.number().positive().max(4).default(1).describe('channel multiplier (same parameter names, narrower tensors)'),
  weights: z
    .string()
    .nullable()
    .default(null)
    .describe('weights file (safetensors or torch.save .pth); null: train it here first (from scratch; a teacher with trainable BatchNorm and every stage trainable, the student as student.norm / student.trainableLayers say)'),
  weightsKey: z.string().optional().describe('for .pth checkpoints that nest the state dict: its key (model, state_dict, ...)'),
  backbone: z
    .string()
    .nullable()
    .default(null)
    .describe(
      "ImageNet checkpoint the backbone starts from when the model is trained here (weights null): torchvision's resnet50-0676ba61.pth / swin_t-704ceda3.pth layouts, timm and the official Swin release, an mmdetection or mtpd detector; loaded into the backbone only (what it holds besides is reported as unused); the student's auto setup then is frozen BatchNorm with 3 trainable stages, as torchvision's weights_backbone",
    ),
  classes: z
    .enum(['dataset', 'coco91', 'coco80'])
    .default('dataset')
    .describe(
      "what the model's class outputs stand for: dataset = one per dataset category (models trained here); coco91 = torchvision's COCO checkpoints (91 outputs indexed by COCO category id); coco80 = mmdetection's COCO checkpoints (80 contiguous outputs in COCO order); matched to the dataset's categories by id or name (classMatch), so a COCO checkpoint is evaluated and trained with the right labels",
    ),
  classMatch: z
    .enum(['auto', 'id', 'name'])
    .default('auto')
    .describe("how coco91/coco80 classes meet the dataset's categories: id, name, or auto (by id when every dataset category's id names the same class, else by name)"),
  minSize: positiveInt.optional().describe("this model's input resolution (shorter side); default: data.minSize"),
  maxSize: positiveInt.optional(),
  options: z.record(z.string(), z.unknown()).prefault({}).describe('extra detector options (torchvision keyword names)'),
  train: scheduleSchema.optional().describe('schedule used when the model is trained here (default: the top-level schedule)'),
});

/**
 * The student: a model plus its training setup (norm layer, trainable backbone stages), one
 * choice used in every stage it goes through (off-the-shelf training, every progressive stage,
 * every baseline, every order of `mtpd orders`).
 */
export const studentSchema = modelSchema.extend({
  norm: z
    .enum(['auto', 'bn', 'frozen_bn'])
    .default('auto')
    .describe(
      "the student's backbone norm layer in every stage it trains in (torchvision's norm_layer): bn = BatchNorm2d whose statistics and affine parameters train, frozen_bn = FrozenBatchNorm2d (fixed statistics and affine, as torchvision with pretrained backbones); auto = bn when the student is trained from scratch here (weights null), frozen_bn when it starts from given weights",
    ),
  trainableLayers: z
    .union([z.literal('auto'), z.number().int().min(0).max(5)])
    .default('auto')
    .describe(
      "backbone stages of the student that train, counted from the top (torchvision's trainable_backbone_layers: 5 = all, ResNet conv1+layer1..4; 3 = layer2..4; 0 = none, only FPN and head train), in every stage it trains in; auto = 5 when the student is trained from scratch here (weights null), 3 when it starts from given weights",
    ),
  syncBN: z
    .boolean()
    .default(false)
    .describe(
      "data-parallel training (--nproc N): the student's trainable BatchNorm layers compute their batch statistics over every process of the job, as one BatchNorm over the job's whole batch (torch.nn.SyncBatchNorm.convert_sync_batchnorm, torchvision's --sync-bn, mmdetection's norm_cfg type SyncBN), in every stage it trains in; no effect with one process or with frozen BatchNorm (student.norm frozen_bn)",
    ),
});

export const splitSchema = z.strictObject({
  images: z.string().describe('image folder, relative to data.root'),
  annotations: z.string().describe('COCO instances JSON, relative to data.root'),
});

export const dataSchema = z.strictObject({
  root: z.string().describe('dataset folder'),
  train: splitSchema.default({ images: 'train', annotations: 'instances_train.json' }),
  val: splitSchema.default({ images: 'val', annotations: 'instances_val.json' }),
  minSize: z.union([positiveInt, z.array(positiveInt).min(1)]).default(256).describe('shorter side after resize; a list picks one per batch (multi-scale training)'),
  maxSize: positiveInt.default(320),
  flip: z.number().min(0).max(1).default(0.5).describe('horizontal flip probability in training'),
  batchSize: positiveInt.default(4),
  workers: z.number().int().min(0).default(2).describe('loader worker threads'),
  skipBadData: z.boolean().default(false).describe('skip (and count) broken images and annotations instead of stopping'),
  keepEmptyImages: z.boolean().default(false).describe('train on images without annotations'),
  synth: z
    .strictObject({ images: positiveInt.default(400), valImages: positiveInt.optional().describe('validation images (default: images / 4)'), size: positiveInt.default(192), seed: z.number().int().min(0).default(0), difficulty: z.enum(['hard', 'clear']).default('hard').describe("'hard': clutter, occlusion, crowds, tiny objects; 'clear': the demo's easier scenes") })
    .optional()
    .describe('make the built-in demo dataset in data.root when it is missing'),
});

export const distillLossSchema = z.strictObject({
  loss: z
    .enum(['mse', 'cwd', 'fgd', 'mgd', 'pkd'])
    .default('pkd')
    .describe(
      'distillation loss on the FPN maps, one term per level: pkd (default) = MSE of per-channel standardized maps, i.e. 1 - Pearson correlation per level, scale-free whatever the two models\' feature magnitudes (mmrazor PKDLoss); mse = the paper\'s plain feature matching, whose size follows the teacher\'s feature scale (can be 100x the detection loss at weight 1); cwd, fgd, mgd as their papers',
    ),
  weight: z
    .number()
    .min(0)
    .default(1)
    .describe(
      "lambda: weight of the distillation loss against the detection losses (pkd's default 1 is mmrazor's loss_weight; every distillation stage logs the distillation/detection loss ratio and warns above 10x)",
    ),
  options: z.record(z.string(), z.unknown()).prefault({}).describe('loss hyperparameters (method.md names: tau, temp, alpha, beta, ...)'),
  levels: z.array(z.string()).optional().describe('feature taps to distill (default: every level the student and teacher share)'),
  cacheGiB: z
    .number()
    .min(0)
    .default(1)
    .describe("disk for the frozen teachers' FPN maps, computed once per (image, flip, teacher resolution) and reused by every stage and baseline of the run (<output>/features); full: further maps are computed on every use; 0: no cache"),
});

export const costSchema = z.strictObject({
  fitter: z.enum(['closed-form', 'sgd']).default('closed-form'),
  ridge: z.number().min(0).nullable().default(null).describe('closed-form ridge strength relative to the feature variance; null: chosen by held-out error'),
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  lr: z.number().positive().default(0.01),
  steps: positiveInt.default(200),
  trainImages: positiveInt.default(64).describe('training-split images the linear maps are fitted on'),
  valImages: positiveInt.default(64).describe('validation-split images the costs are measured on'),
});

export const configSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION).default(CONFIG_VERSION),
  output: z.string().default('runs/mtpd').describe('run folder: checkpoints, metrics.jsonl, reports, plots'),
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu'),
  channelsLast: z
    .boolean()
    .default(false)
    .describe(
      "every model of the run (student, teachers; training, evaluation, the cost matrix) with its convolutions in the channels_last (NHWC) memory format, meant for CUDA with schedule.amp (Tensor Cores; scripts/cuda-check.mjs times it against torchvision); the same results to float rounding; off by default (its CPU speed is not measured yet)",
    ),
  threads: z.number().int().min(0).default(0).describe('intra-op threads; 0 = all cores'),
  jobs: z
    .number()
    .int()
    .min(1)
    .default(1)
    .describe(
      'independent parts of the run trained at once, each in its own process with threads/jobs intra-op threads: the progressive curriculum (its stages in order) and each baseline; 1 = one after the other. Each part gives the same result as alone; small models gain most (one thread per stage, no hand-offs per operator)',
    ),
  seed: z.number().int().min(0).default(0),
  data: dataSchema,
  student: studentSchema,
  teachers: z.array(modelSchema).min(1),
  schedule: scheduleSchema
    .prefault({})
    .describe(
      "one stage's schedule: every progressive distillation stage (its LR restarting), every model trained here without its own train; each baseline (longer, direct, ensemble) runs k of them (k = the teachers in the order) as ONE continuous schedule",
    ),
  distill: distillLossSchema.prefault({}),
  order: z
    .strictObject({
      method: z.enum(['bgs', 'ap', 'given']).default('bgs'),
      k: positiveInt.default(2).describe('longest teacher sequence'),
      given: z.array(z.string()).optional().describe("method 'given': the order to use"),
      costs: costSchema.prefault({}),
    })
    .prefault({}),
  checkpoint: z.strictObject({ every: positiveInt.default(200), keep: positiveInt.default(3) }).prefault({}),
  dist: z
    .strictObject({
      timeout: z.number().positive().default(300).describe('seconds a rendezvous or a collective (gradient allreduce, barrier) may take before it fails'),
      heartbeatTimeout: z.number().positive().default(30).describe('seconds without a heartbeat after which a rank is reported dead or hung and the others stop'),
      bucketMb: z.number().positive().default(25).describe('gradient allreduce bucket size in MiB (as DDP bucket_cap_mb)'),
      scaleLr: z.enum(['none', 'linear']).default('none').describe("learning rate with N processes: none = as configured (the batch of data.batchSize x N takes it as is), linear = times N (the linear scaling rule)"),
    })
    .prefault({})
    .describe('data-parallel training (mtpd train --nproc N, or under torchrun): data.batchSize is per process'),
  evaluation: z
    .strictObject({ scoreThresh: z.number().min(0).max(1).default(0.05), detectionsPerImage: positiveInt.default(100), batchSize: positiveInt.default(8) })
    .prefault({}),
  baselines: z
    .array(z.enum(['longer', 'direct', 'ensemble']))
    .default(['longer', 'direct', 'ensemble'])
    .describe(
      "the paper's baselines, each one schedule of the curriculum's whole budget from the off-the-shelf student: longer (detection alone), direct (distillation from the strongest teacher), ensemble (the mean of the order's teachers' aligned maps, one distiller)",
    ),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type StudentConfig = z.output<typeof studentSchema>;
export type Schedule = z.output<typeof scheduleSchema>;

/** JSON Schema of the config file, for editors. */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
}
