/**
 * The distillation step: student detection losses + weighted distillation losses of one or
 * several frozen teachers, one backward, one optimizer over the student and every distiller.
 * Teachers are frozen when the step is built and put in eval mode on every step; each runs at
 * its own input resolution (its own minSize/maxSize). The maps are aligned image by image
 * (./align.ts): each image's valid student cells are resampled at the per-image content scale
 * onto its valid cells of the teacher's grid, padding is never distilled, and FGD's boxes are
 * mapped into each teacher's resized pixels with the same mapping. Cached teacher features get
 * their image sizes from the teacher's own resize rule (or `teacherImageSizes`), so cached and
 * live teachers agree.
 */
import { stateDictFromNative, type StateDict } from '../weights/safetensors.js';
import type { Detector, Target } from '../detector.js';
import { disposedError } from '../dispose.js';
import { MtpdError, withCallSite } from '../errors.js';
import { native } from '../native.js';
import type { NativeGradSyncHandle } from '../dist/group.js';
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
  /**
   * An existing distiller, or a config to build one (channels default to the models' FPN widths).
   * Under ensemble "maps" only the first teacher's is used (the others' are ignored, none is built).
   */
  distiller: Distiller | DistillerConfig;
  /** Multiplies this teacher's distillation losses (default 1); under "maps", its share of the averaged map. */
  weight?: number;
  /** Needed with model null: the teacher's FPN channels. */
  channels?: number;
  /** Needed with model null: the stride of each of its taps in input pixels ({p3: 8, p4: 16, ...}). */
  strides?: Record<string, number>;
}

export interface DistillStepOptions {
  /**
   * How several teachers combine:
   * - "sum" (default): every teacher's losses, each through its own distiller, added
   *   ("distill.<teacher>.<pair>.<term>");
   * - "mean": the same, divided by the number of teachers;
   * - "maps": the paper's ensemble baseline: every teacher's maps are aligned onto the first
   *   teacher's grid and averaged on the valid cells (weighted by the teachers' weights, normalized
   *   to sum 1); the student distils from that one map through the first teacher's distiller
   *   alone ("distill.<pair>.<term>"), so the distillation weight is one teacher's. Every teacher
   *   needs the first one's FPN channels and taps.
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
  /**
   * Per teacher with cached features, each image's [h, w] after that teacher's resize (what the
   * features were computed at). Default: the teacher model's own eval-mode resize rule; required
   * for a teacher without a model.
   */
  teacherImageSizes?: ([number, number][] | null)[];
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
  /** (K, H, W) uint8 instance masks: a Mask R-CNN student's losses need them. */
  masks?: Tensor;
}

function toNativeTarget(t: Target, i: number): NativeTarget {
  if (!t || typeof t !== 'object') throw new MtpdError('ERR_MTPD_ARGUMENT', `targets[${i}] must be {boxes, labels}`);
  const boxes = Array.isArray(t.boxes) ? tensor('float32', [t.boxes.length, 4], t.boxes.flat()) : t.boxes;
  const labels = Array.isArray(t.labels) ? tensor('int64', [t.labels.length], t.labels) : t.labels;
  return t.masks ? { boxes, labels, masks: t.masks } : { boxes, labels };
}

/** A student, its teachers and their distillers, and ONE optimizer over student + distillers. */
export class DistillSession {
  private queue: Promise<unknown> = Promise.resolve();
  private disposedFlag = false;

  private constructor(
    readonly handle: NativeDistillStepHandle,
    readonly student: Detector,
    /** distiller: null for the teachers after the first under ensemble "maps". */
    readonly teachers: { name: string; model: Detector | null; distiller: Distiller | null; weight: number }[],
    /** The distillers this session built from configs (it disposes them with itself). */
    private readonly owned: Distiller[] = [],
  ) {}

  /** True once dispose() was called. */
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /**
   * Frees the session's optimizer (over the student and the distillers) and the distillers it
   * built from configs, after the steps in flight; the student, the teachers and Distiller
   * objects that were passed in stay (their owners dispose them). Later calls throw
   * ERR_MTPD_DISPOSED. Idempotent.
   */
  async dispose(): Promise<void> {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    await this.queue;
    this.handle.dispose();
    for (const d of this.owned) await d.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  static async create(student: Detector, teachers: TeacherSpec[], options: DistillStepOptions = {}): Promise<DistillSession> {
    if (!Array.isArray(teachers) || teachers.length === 0) {
      throw new MtpdError('ERR_MTPD_ARGUMENT', 'distillation needs at least one teacher');
    }
    const maps = options.ensemble === 'maps';
    const built: { name: string; model: Detector | null; distiller: Distiller | null; weight: number; strides?: Record<string, number> }[] = [];
    const owned: Distiller[] = [];
    for (const [i, t] of teachers.entries()) {
      let distiller: Distiller | null;
      if (maps && i > 0) distiller = null; // "maps": the first teacher's distiller alone
      else if (t.distiller instanceof Distiller) distiller = t.distiller;
      else {
        const teacherChannels = t.model ? t.model.featureChannels : t.channels;
        if (teacherChannels === undefined) {
          throw new MtpdError('ERR_MTPD_ARGUMENT', `teachers[${i}] ("${t.name}") has no model: give its channels`);
        }
        distiller = await Distiller.create(
          { student_channels: student.featureChannels, teacher_channels: teacherChannels, ...t.distiller },
          student.device,
        );
        owned.push(distiller);
      }
      built.push({ name: t.name, model: t.model, distiller, weight: t.weight ?? 1, ...(t.strides ? { strides: t.strides } : {}) });
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
        built.map((b) => ({
          name: b.name,
          model: b.model ? b.model.detectorHandle : null,
          distiller: b.distiller ? b.distiller.handle : null,
          weight: b.weight,
          ...(b.strides ? { strides: b.strides } : {}),
        })),
        json,
      );
      return new DistillSession(handle, student, built, owned);
    } catch (err) {
      for (const d of owned) await d.dispose();
      throw withCallSite(err, site);
    }
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposedFlag) return Promise.reject(disposedError('DistillSession', 'call'));
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
    return this.enqueue(() => this.handle.step(batch.images, targets, batch.teacherFeatures ?? null, batch.teacherImageSizes ?? null));
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
    if (this.disposedFlag) throw disposedError('DistillSession', 'exportStudent');
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

  /** Data-parallel training: see Optimizer.setGradSync (the student's and the distillers' gradients). */
  async setGradSync(sync: NativeGradSyncHandle | null): Promise<void> {
    await this.enqueue(() => this.handle.setGradSync(sync));
  }

  /** Names of every parameter the optimizer updates ("student.*", "distill.<teacher>.*"). */
  parameterNames(): string[] {
    if (this.disposedFlag) throw disposedError('DistillSession', 'parameterNames');
    return this.handle.info().parameters;
  }

  get lr(): number {
    if (this.disposedFlag) throw disposedError('DistillSession', 'lr');
    return this.handle.info().lr;
  }

  setLr(lr: number): void {
    if (this.disposedFlag) throw disposedError('DistillSession', 'setLr');
    this.handle.setLr(lr);
  }
}

const sessions = new WeakMap<Detector, { key: string; models: (Detector | null)[]; distillers: (Distiller | null)[]; session: DistillSession }>();

/** Identity of a teacher list: models and Distiller objects by identity, configs by value. */
function sessionKey(teachers: TeacherSpec[], options: DistillStepOptions): string {
  return JSON.stringify([
    options,
    teachers.map((t) => [t.name, t.weight ?? 1, t.channels ?? null, t.strides ?? null, t.distiller instanceof Distiller ? null : t.distiller]),
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
    // The session it replaces (its optimizer, the distillers it built) is freed now.
    if (entry) await entry.session.dispose();
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
