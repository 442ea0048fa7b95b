/**
 * Optimizers for a detector's trainable parameters (frozen layers are left out): SGD with
 * momentum / weight decay / nesterov and AdamW (libtorch's, numerically torch.optim's), over
 * parameter groups chosen by name prefix or suffix, with gradient-norm clipping and, on CUDA,
 * mixed precision (autocast + dynamic loss scaling).
 */
import { z } from 'zod';
import { disposedError } from './dispose.js';
import { MtpdError, optionsJson } from './errors.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';
import type { NativeGradSyncHandle } from './dist/group.js';
import { stateDictFromNative, type StateDict } from './weights/safetensors.js';

export const ParamGroupSchema = z.strictObject({
  name: z.string().describe('group name in logs'),
  prefix: z.array(z.string()).optional().describe('parameter-name prefixes, e.g. "backbone.body."'),
  suffix: z.array(z.string()).optional().describe('parameter-name suffixes, e.g. ".bias"'),
  lrMult: z.number().min(0).default(1).describe('learning-rate multiplier of the group'),
  weightDecay: z.number().min(0).optional().describe("the group's weight decay (default: the optimizer's)"),
});

export const OptimizerOptionsSchema = z.strictObject({
  type: z.enum(['sgd', 'adamw']).default('sgd'),
  lr: z.number().min(0).optional().describe('base learning rate (default 0.01 for SGD, 0.001 for AdamW)'),
  momentum: z.number().min(0).lt(1).default(0.9).describe('SGD momentum'),
  nesterov: z.boolean().default(false).describe('SGD Nesterov momentum'),
  weightDecay: z.number().min(0).optional().describe('default 1e-4 for SGD, 1e-2 for AdamW'),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]).describe('AdamW betas'),
  eps: z.number().positive().default(1e-8).describe('AdamW epsilon'),
  maxGradNorm: z.number().min(0).default(0).describe('clip the total gradient L2 norm to this (0: off)'),
  amp: z.boolean().default(false).describe('mixed precision (CUDA only)'),
  groups: z.array(ParamGroupSchema).default([]).describe('first matching group wins; the rest form "default"'),
});

export type OptimizerOptions = z.input<typeof OptimizerOptionsSchema>;

export interface OptimizerInfo {
  options: Record<string, unknown>;
  lr: number;
  steps: number;
  groups: { name: string; tensors: number; numel: number }[];
}

/** The native optimizer handle (see native/binding/optimizer_wrap.cc). */
export interface NativeOptimizerHandle {
  info(): { options: string; lr: number; steps: number; groups: { name: string; tensors: number; numel: number }[] };
  setLr(lr: number): void;
  lr(): number;
  stateDict(): Promise<{ names: string[]; tensors: Tensor[] }>;
  loadStateDict(names: string[], tensors: Tensor[], strict: boolean): Promise<void>;
  dispose(): void;
  setGradSync(sync: unknown): Promise<void>;
}

/** snake_case options for the native side, validated here first (errors name the key). */
export function nativeOptimizerOptions(options: OptimizerOptions = {}): Record<string, unknown> {
  const parsed = OptimizerOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'options';
    throw new MtpdError('ERR_MTPD_ARGUMENT', `optimizer ${where}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  const out: Record<string, unknown> = {
    type: o.type,
    max_grad_norm: o.maxGradNorm,
    amp: o.amp,
    groups: o.groups.map((g) => ({
      name: g.name,
      ...(g.prefix ? { prefix: g.prefix } : {}),
      ...(g.suffix ? { suffix: g.suffix } : {}),
      lr_mult: g.lrMult,
      ...(g.weightDecay !== undefined ? { weight_decay: g.weightDecay } : {}),
    })),
  };
  if (o.lr !== undefined) out.lr = o.lr;
  if (o.weightDecay !== undefined) out.weight_decay = o.weightDecay;
  if (o.type === 'sgd') {
    out.momentum = o.momentum;
    out.nesterov = o.nesterov;
  } else {
    out.betas = o.betas;
    out.eps = o.eps;
  }
  return out;
}

export class Optimizer {
  /**
   * @internal `queue` runs a call after the model's calls in flight (the optimizer's state lives
   * on the model's compute thread).
   */
  constructor(
    readonly handle: NativeOptimizerHandle,
    private readonly queue: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
  ) {}

  /**
   * The optimizer's state (momentum buffers, AdamW moments and step counts, the AMP loss scale,
   * the number of steps) as named tensors on the CPU, for checkpoints: `<parameter>.momentum_buffer`,
   * `<parameter>.exp_avg`, `<parameter>.exp_avg_sq`, `<parameter>.step`, `amp.scale`, `steps`.
   */
  async stateDict(): Promise<StateDict> {
    this.check('stateDict');
    return stateDictFromNative(await this.queue(() => this.handle.stateDict()));
  }

  private disposedFlag = false;

  private check(method: string): void {
    if (this.disposedFlag) throw disposedError('optimizer', method);
  }

  /** True once dispose() was called. */
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /**
   * Frees the optimizer's state (momentum buffers, moments, the AMP scale and its hold on the
   * parameters) after the model's calls in flight; later calls throw ERR_MTPD_DISPOSED. Idempotent.
   */
  async dispose(): Promise<void> {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    try {
      await this.queue(async () => this.handle.dispose());
    } catch (err) {
      // The detector went first (its queue refuses calls): nothing of it can be running.
      if ((err as { code?: string }).code !== 'ERR_MTPD_DISPOSED') throw err;
      this.handle.dispose();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /** Restores a stateDict() of the same kind of optimizer over the same parameters (errors name the key). */
  async loadStateDict(state: StateDict): Promise<void> {
    this.check('loadStateDict');
    await this.queue(() => this.handle.loadStateDict([...state.keys()], [...state.values()], true));
  }

  /** Current base learning rate (groups keep their multipliers). */
  get lr(): number {
    this.check('lr');
    return this.handle.lr();
  }

  /** Sets the base learning rate; schedules call this before each step. */
  setLr(lr: number): void {
    this.check('setLr');
    if (!Number.isFinite(lr) || lr < 0) throw new MtpdError('ERR_MTPD_ARGUMENT', `learning rate must be >= 0, got ${lr}`);
    this.handle.setLr(lr);
  }

  /**
   * Data-parallel training: every later step averages its gradients over the processes of a
   * job (a gradient sync from a ProcessGroup; bucketed allreduce overlapped with backward) before
   * clipping and the update. The parameters first take rank 0's values. null detaches it.
   */
  async setGradSync(sync: NativeGradSyncHandle | null): Promise<void> {
    this.check('setGradSync');
    await this.queue(() => this.handle.setGradSync(sync));
  }

  info(): OptimizerInfo {
    this.check('info');
    const i = this.handle.info();
    return { ...i, options: JSON.parse(i.options) as Record<string, unknown> };
  }
}

/** @internal Creates the native optimizer for a native detector handle. */
export function createNativeOptimizer(detectorHandle: unknown, options: OptimizerOptions = {}, queue?: <T>(fn: () => Promise<T>) => Promise<T>): Optimizer {
  const json = optionsJson(nativeOptimizerOptions(options), 'optimizer');
  return new Optimizer(native().createOptimizer(detectorHandle, json), queue);
}

declare module './native.js' {
  interface Binding {
    createOptimizer(detector: unknown, optionsJson: string): NativeOptimizerHandle;
  }
}
