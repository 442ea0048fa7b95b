/**
 * The distillation step: student detection losses + weighted distillation losses of one or
 * several frozen teachers, one backward, one optimizer over the student and every distiller.
 * Teachers are frozen when the step is built and put in eval mode on every step; each runs at
 * its own input resolution (its own minSize/maxSize), the adapters resize the student's maps.
 */
import { stateDictFromNative, type StateDict } from '../weights/safetensors.js';
import type { Detector, Target } from '../detector.js';
import { MtpdError, withCallSite } from '../errors.js';
import { native } from '../native.js';
import { nativeOptimizerOptions, type OptimizerOptions } from '../optim.js';
import { tensor, type Tensor } from '../tensor.js';
import type { FeatureMaps, NativeDistillStepHandle } from './binding.js';
import type { DistillerConfig } from './config.js';
import { Distiller } from './distiller.js';

export interface TeacherSpec {
  /** Used in loss names when there are several teachers: "distill.<name>.p3.mse". */
  name: string;
  /** The teacher detector; null when every step passes its cached features. */
  model: Detector | null;
  /** An existing distiller, or a config to build one (channels default to the models' FPN widths). */
  distiller: Distiller | DistillerConfig;
  /** Multiplies this teacher's distillation losses (default 1). */
  weight?: number;
  /** Needed with model null: the teacher's FPN channels. */
  channels?: number;
}

export interface DistillStepOptions {
  /**
   * Several teachers: "sum" (default) or "mean" of their separate losses, or "maps": every
   * teacher's maps aligned onto the first teacher's grid and averaged, and the student distils
   * from that one mean map through the first teacher's distiller (the paper's ensemble
   * baseline; the total distillation weight is one teacher's; loss names as for one teacher).
   */
  ensemble?: 'sum' | 'mean' | 'maps';
  /** Multiplies the student's detection losses (default 1). */
  detectionWeight?: number;
  optimizer?: OptimizerOptions;
}

export interface DistillBatch {
  images: Tensor[];
  targets: Target[];
  /** Per teacher, cached feature maps for exactly these images (or null to run the teacher). */
  teacherFeatures?: (FeatureMaps | null)[];
}

export interface DistillStepResult {
  /** Detection losses ("classification", "bbox_regression") and "distill." terms, as weighted in `loss`. */
  losses: Record<string, number>;
  loss: number;
  gradNorm: number;
  skipped: boolean;
  scale: number;
  lr: number;
  /** "<teacher>/<pair>" -> "identity" | "conv1x1" | "resize" | "conv1x1+resize". */
  adapters: Record<string, string>;
  studentTraining: boolean;
  /** Each teacher's training flag while it ran: always false. */
  teachersTraining: boolean[];
}

interface NativeTarget {
  boxes: Tensor;
  labels: Tensor;
}

function toNativeTarget(t: Target, i: number): NativeTarget {
  if (!t || typeof t !== 'object') throw new MtpdError('ERR_MTPD_ARGUMENT', `targets[${i}] must be {boxes, labels}`);
  const boxes = Array.isArray(t.boxes) ? tensor('float32', [t.boxes.length, 4], t.boxes.flat()) : t.boxes;
  const labels = Array.isArray(t.labels) ? tensor('int64', [t.labels.length], t.labels) : t.labels;
  return { boxes, labels };
}

/** A student, its teachers and their distillers, and ONE optimizer over student + distillers. */
export class DistillSession {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly handle: NativeDistillStepHandle,
    readonly student: Detector,
    readonly teachers: { name: string; model: Detector | null; distiller: Distiller; weight: number }[],
  ) {}

  static async create(student: Detector, teachers: TeacherSpec[], options: DistillStepOptions = {}): Promise<DistillSession> {
    if (!Array.isArray(teachers) || teachers.length === 0) {
      throw new MtpdError('ERR_MTPD_ARGUMENT', 'distillation needs at least one teacher');
    }
    const built = [];
    for (const [i, t] of teachers.entries()) {
      let distiller: Distiller;
      if (t.distiller instanceof Distiller) distiller = t.distiller;
      else {
        const teacherChannels = t.model ? t.model.featureChannels : t.channels;
        if (teacherChannels === undefined) {
          throw new MtpdError('ERR_MTPD_ARGUMENT', `teachers[${i}] ("${t.name}") has no model: give its channels`);
        }
        distiller = await Distiller.create(
          { student_channels: student.featureChannels, teacher_channels: teacherChannels, ...t.distiller },
          student.device,
        );
      }
      built.push({ name: t.name, model: t.model, distiller, weight: t.weight ?? 1 });
    }
    const json = JSON.stringify({
      ensemble: options.ensemble ?? 'sum',
      detection_weight: options.detectionWeight ?? 1,
      optimizer: nativeOptimizerOptions(options.optimizer ?? {}),
    });
    const site = new Error().stack;
    try {
      const handle = native().distill.createStep(
        student.detectorHandle,
        built.map((b) => ({ name: b.name, model: b.model ? b.model.detectorHandle : null, distiller: b.distiller.handle, weight: b.weight })),
        json,
      );
      return new DistillSession(handle, student, built);
    } catch (err) {
      throw withCallSite(err, site);
    }
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const site = new Error().stack;
    const run = this.queue.then(fn, fn).catch((err: unknown) => {
      throw withCallSite(err, site);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One step: the student in train mode (teachers stay in eval). */
  async step(batch: DistillBatch): Promise<DistillStepResult> {
    const targets = batch.targets.map(toNativeTarget);
    await this.student.train(true);
    return this.enqueue(() => this.handle.step(batch.images, targets, batch.teacherFeatures ?? null));
  }

  /** Teacher i's feature maps for `images` (eval mode, no grad), e.g. for the feature cache. */
  teacherFeatures(i: number, images: Tensor[]): Promise<FeatureMaps> {
    return this.enqueue(() => this.handle.teacherFeatures(i, images));
  }

  /**
   * Saves the student's weights alone (safetensors): adapters and loss-side modules live in the
   * distillers and are never part of it; the next MTPD stage builds new ones for its teacher.
   */
  async exportStudent(path: string, metadata: Record<string, string> = {}): Promise<void> {
    await this.queue;
    await this.student.saveWeights(path, metadata);
  }

  /** The state of the step's optimizer (see Optimizer.stateDict), for checkpoints. */
  async optimizerState(): Promise<StateDict> {
    return stateDictFromNative(await this.enqueue(() => this.handle.optimizerState()));
  }

  /** Restores optimizerState() (a session over the same student and distillers). */
  async loadOptimizerState(state: StateDict): Promise<void> {
    await this.enqueue(() => this.handle.loadOptimizerState([...state.keys()], [...state.values()], true));
  }

  /** Names of every parameter the optimizer updates ("student.*", "distill.<teacher>.*"). */
  parameterNames(): string[] {
    return this.handle.info().parameters;
  }

  get lr(): number {
    return this.handle.info().lr;
  }

  setLr(lr: number): void {
    this.handle.setLr(lr);
  }
}

const sessions = new WeakMap<Detector, { key: string; models: (Detector | null)[]; distillers: (Distiller | null)[]; session: DistillSession }>();

/** Identity of a teacher list: models and Distiller objects by identity, configs by value. */
function sessionKey(teachers: TeacherSpec[], options: DistillStepOptions): string {
  return JSON.stringify([
    options,
    teachers.map((t) => [t.name, t.weight ?? 1, t.channels ?? null, t.distiller instanceof Distiller ? null : t.distiller]),
  ]);
}

/** The session `distillStep` keeps for this student, if any. */
export function distillSessionOf(student: Detector): DistillSession | undefined {
  return sessions.get(student)?.session;
}

/**
 * `distillStep(student, teachers, batch, options)`: one distillation step. The session (the
 * distillers and the optimizer state) is kept per student and reused while the same teacher
 * models, the same Distiller objects or equal distiller configs, and equal options come back;
 * anything else starts a new session (new distillers, a new optimizer).
 */
export async function distillStep(
  student: Detector,
  teachers: TeacherSpec[],
  batch: DistillBatch,
  options: DistillStepOptions = {},
): Promise<DistillStepResult> {
  const key = sessionKey(teachers, options);
  let entry = sessions.get(student);
  const same =
    entry !== undefined &&
    entry.key === key &&
    entry.models.length === teachers.length &&
    teachers.every((t, i) => entry!.models[i] === t.model && (entry!.distillers[i] === (t.distiller instanceof Distiller ? t.distiller : null)));
  if (!same) {
    entry = {
      key,
      models: teachers.map((t) => t.model),
      distillers: teachers.map((t) => (t.distiller instanceof Distiller ? t.distiller : null)),
      session: await DistillSession.create(student, teachers, options),
    };
    sessions.set(student, entry);
  }
  return entry!.session.step(batch);
}
