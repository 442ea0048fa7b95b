/**
 * A distiller: the adapters and loss-side modules (GC blocks, generation blocks) between one
 * student and one teacher, held by the addon. They train with the student and are never
 * saved with it.
 */
import { disposedError } from '../dispose.js';
import { MtpdError, optionsJson, withCallSite } from '../errors.js';
import { native, type NativeModuleHandle, type RawLoadReport, type RawModuleInfo } from '../native.js';
import type { Tensor } from '../tensor.js';
import type { FeatureMaps, LossContext, RawComputeResult } from './binding.js';
import { distillerConfigSchema, type DistillerConfig } from './config.js';

export type { FeatureMaps, LossContext, RawComputeResult } from './binding.js';

function parseConfig(config: DistillerConfig): DistillerConfig {
  const r = distillerConfigSchema.safeParse(config);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length ? issue.path.join('.') : 'distiller';
    throw new MtpdError('ERR_MTPD_CONFIG', `distiller config: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  const site = new Error('call site').stack;
  try {
    return await fn();
  } catch (err) {
    throw withCallSite(err, site);
  }
}

export class Distiller {
  private constructor(
    readonly handle: NativeModuleHandle,
    /** The resolved configuration (every default filled in) as the addon reports it. */
    readonly config: DistillerConfig,
  ) {}

  static async create(config: DistillerConfig, device = 'cpu'): Promise<Distiller> {
    const parsed = parseConfig(config);
    const handle = await call(() => native().createModule('distill.Distiller', optionsJson(parsed, 'distiller'), device));
    return new Distiller(handle, parsed);
  }

  info(): RawModuleInfo {
    this.check('info');
    return this.handle.info();
  }

  private disposedFlag = false;
  private inFlight: Promise<unknown> = Promise.resolve();

  private check(method: string): void {
    if (this.disposedFlag) throw disposedError('distiller', method);
  }

  private track<T>(method: string, fn: () => Promise<T>): Promise<T> {
    this.check(method);
    const p = call(fn);
    this.inFlight = p.catch(() => undefined);
    return p;
  }

  /** True once dispose() was called. */
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /**
   * Frees the adapters and loss-side modules after the last call settles; later calls throw
   * ERR_MTPD_DISPOSED. A distillation session over it keeps a hold on them until it is disposed.
   */
  async dispose(): Promise<void> {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    await this.inFlight;
    this.handle.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /**
   * Losses on given maps. With `grad`, also the gradients the total sends to the student maps
   * and to every distiller parameter, and whether any reached a teacher map (computed in
   * C++; the distiller's own gradients are cleared afterwards).
   */
  compute(student: FeatureMaps, teacher: FeatureMaps, context?: LossContext, options: { grad?: boolean } = {}): Promise<RawComputeResult> {
    return this.track('compute', () => native().distill.compute(this.handle, student, teacher, context, options));
  }

  stateDict(): Promise<{ names: string[]; tensors: Tensor[] }> {
    return this.track('stateDict', () => this.handle.stateDict());
  }

  loadStateDict(names: string[], tensors: Tensor[], strict = true): Promise<RawLoadReport> {
    return this.track('loadStateDict', () => this.handle.loadStateDict(names, tensors, strict));
  }

  setTraining(on: boolean): void {
    this.check('setTraining');
    this.handle.setTraining(on);
  }

  to(device: string): Promise<string> {
    return this.track('to', () => this.handle.to(device));
  }
}

/** Registered loss types and their one-line docs. */
export function listLosses(): Record<string, string> {
  return native().distill.losses();
}

/** FGD's foreground/background masks for an (n, h, w) map (see native/distill/fgd.h). */
export function fgdMasks(context: LossContext, n: number, h: number, w: number): Promise<{ fg: Tensor; bg: Tensor }> {
  return call(() => native().distill.fgdMasks(context, n, h, w));
}
