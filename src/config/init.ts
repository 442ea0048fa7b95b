/** `mtpd init`: an annotated default config, its comments taken from the schema's descriptions. */
import { isMap, isScalar, isSeq, type Node, Document } from 'yaml';
import type { z } from 'zod';
import { type ConfigInput, configSchema } from './schema.js';

/** mmdetection's RetinaNet architecture where it differs from torchvision's (what `mtpd import` prints). */
const MMDET = { extra_blocks: 'c5_norelu', anchor_style: 'mmdet', box_coder: 'mmdet', resize_style: 'mmdet', detections_per_img: 100 };

/** The paper's setting on COCO: a RetinaNet-R50 student and a pool of stronger RetinaNets. */
export function templateConfig(): ConfigInput {
  return {
    version: 1,
    output: 'runs/coco-r50',
    device: 'cuda',
    threads: 0,
    seed: 0,
    data: {
      root: 'data/coco',
      train: { images: 'train2017', annotations: 'annotations/instances_train2017.json' },
      val: { images: 'val2017', annotations: 'annotations/instances_val2017.json' },
      minSize: 800,
      maxSize: 1333,
      batchSize: 16,
      workers: 8,
    },
    // every model is an mmdetection COCO checkpoint converted by `mtpd import` (see the README's "Teachers from the model zoos")
    student: { name: 'student', arch: 'retinanet_resnet50_fpn', weights: 'weights/retinanet_r50_fpn_1x.safetensors', classes: 'coco80', options: MMDET },
    teachers: [
      { name: 'r101', arch: 'retinanet_resnet101_fpn', weights: 'weights/retinanet_r101_fpn_1x.safetensors', classes: 'coco80', options: MMDET },
      { name: 'x101', arch: 'retinanet_resnext101_64x4d_fpn', weights: 'weights/retinanet_x101_64x4d_fpn_1x.safetensors', classes: 'coco80', options: MMDET },
      { name: 'swin_t', arch: 'retinanet_swin_t_fpn', weights: 'weights/retinanet_swin_t_fpn_1x.safetensors', classes: 'coco80', options: { ...MMDET, swin_style: 'mmdet' } },
    ],
    schedule: { epochs: 12, optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, warmupIterations: 500, policy: 'step', milestones: [8 / 12, 11 / 12] },
    distill: { loss: 'pkd', weight: 1 },
    order: { method: 'bgs', k: 2 },
  };
}

type AnyZod = z.ZodType & { description?: string; def?: { innerType?: AnyZod; shape?: Record<string, AnyZod>; element?: AnyZod; type?: string } };

function unwrap(s: AnyZod | undefined): AnyZod | undefined {
  let cur = s;
  for (let i = 0; i < 10 && cur; i++) {
    const inner = (cur as AnyZod).def?.innerType;
    if (!inner) break;
    cur = inner;
  }
  return cur;
}

function describe(s: AnyZod | undefined): string | undefined {
  let cur = s;
  for (let i = 0; i < 10 && cur; i++) {
    if (cur.description) return cur.description;
    cur = cur.def?.innerType;
  }
  return undefined;
}

function shapeOf(s: AnyZod | undefined): Record<string, AnyZod> | undefined {
  const u = unwrap(s);
  const shape = (u as unknown as { shape?: Record<string, AnyZod> })?.shape ?? u?.def?.shape;
  return shape;
}

function annotate(node: Node | null | undefined, schema: AnyZod | undefined): void {
  if (isMap(node)) {
    const shape = shapeOf(schema);
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const child = shape?.[key];
      const doc = describe(child);
      if (doc && isScalar(pair.key)) pair.key.commentBefore = ` ${doc}`;
      annotate(pair.value as Node, child);
    }
  } else if (isSeq(node)) {
    const el = unwrap(schema)?.def?.element;
    for (const item of node.items) annotate(item as Node, el);
  }
}

export function annotatedConfigYaml(config: ConfigInput = templateConfig()): string {
  const resolved = configSchema.parse(config);
  const doc = new Document(resolved);
  annotate(doc.contents as Node, configSchema as unknown as AnyZod);
  doc.commentBefore =
    ' mtpd config (version 1). Every key is checked: a misspelled key is an error.\n' +
    ' Override any value on the command line: mtpd train --config this.yaml --set schedule.lr=0.02';
  return doc.toString({ lineWidth: 110 });
}
