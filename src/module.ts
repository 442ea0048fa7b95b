/**
 * A TS handle over a libtorch module built by name in the addon. Calls are queued so at most one
 * runs natively at a time per module (the addon would otherwise answer ERR_MTPD_BUSY); errors
 * from the worker thread carry the JS call site.
 */
import { disposedError } from './dispose.js';
import { MtpdError, optionsJson, withCallSite } from './errors.js';
import { native, type NativeModuleHandle, type RawLoadReport, type RawModuleInfo } from './native.js';
import type { Tensor } from './tensor.js';
import { readWeights, type ReadWeightsOptions, saveSafetensors, type StateDict } from './weights/index.js';
import { stateDictFromNative } from './weights/safetensors.js';

export interface LoadReport extends RawLoadReport {}

export interface ModuleOptions {
  device?: string;
}

export class Module {
  protected queue: Promise<unknown> = Promise.resolve();
  private disposedFlag = false;

  protected constructor(
    readonly handle: NativeModuleHandle,
    readonly kind: string,
    readonly options: Record<string, unknown>,
  ) {}

  /** Builds a registered module (see `listModules()`), e.g. `Module.create('nn.Conv2d', {in_channels: 3, ...})`. */
  static async create(kind: string, options: Record<string, unknown> = {}, opts: ModuleOptions = {}): Promise<Module> {
    const handle = await Module.createHandle(kind, options, opts);
    return new Module(handle, kind, options);
  }

  protected static async createHandle(kind: string, options: Record<string, unknown>, opts: ModuleOptions): Promise<NativeModuleHandle> {
    const site = new Error().stack;
    try {
      return await native().createModule(kind, optionsJson(options, kind), opts.device ?? 'cpu');
    } catch (err) {
      throw withCallSite(err, site);
    }
  }

  /** Runs `fn` after every earlier call on this module has settled. */
  protected enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposedFlag) return Promise.reject(disposedError(this.kind, 'call'));
    const site = new Error().stack;
    const run = this.queue.then(fn, fn).catch((err: unknown) => {
      throw withCallSite(err, site);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  info(): RawModuleInfo {
    if (this.disposedFlag) throw disposedError(this.kind, 'info');
    return this.handle.info();
  }

  /** True once dispose() was called. */
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /**
   * Frees the native module (its parameters and buffers; for a detector, its compute thread)
   * after the calls already queued on it; every later call throws ERR_MTPD_DISPOSED. Idempotent.
   * Optimizers and distillation sessions over a detector hold its parameters until they are
   * disposed too.
   */
  async dispose(): Promise<void> {
    if (this.disposedFlag) return this.queue.then(() => undefined);
    const run = this.queue.then(() => this.handle.dispose());
    this.disposedFlag = true;
    this.queue = run.catch(() => undefined);
    await run;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  get device(): string {
    return this.handle.info().device;
  }

  /** Train or eval mode (dropout, drop path, batch-norm statistics). */
  async train(on = true): Promise<void> {
    await this.enqueue(async () => this.handle.setTraining(on));
  }

  async eval(): Promise<void> {
    await this.train(false);
  }

  async to(device: string): Promise<string> {
    return this.enqueue(() => this.handle.to(device));
  }

  /** Parameters and buffers under PyTorch's dotted names, copied to the CPU. */
  async stateDict(): Promise<StateDict> {
    return stateDictFromNative(await this.enqueue(() => this.handle.stateDict()));
  }

  /**
   * Copies tensors in by name. strict (default): any missing, unexpected or misshaped key is an
   * error that names them, and nothing is changed. Non-strict: what matches loads; the report lists the rest.
   */
  async loadStateDict(dict: StateDict, options: { strict?: boolean } = {}): Promise<LoadReport> {
    const names = [...dict.keys()];
    const tensors = [...dict.values()];
    return this.enqueue(() => this.handle.loadStateDict(names, tensors, options.strict ?? true));
  }

  /** Loads a safetensors or torch.save `.pth` file. */
  async loadWeights(path: string, options: ReadWeightsOptions & { strict?: boolean } = {}): Promise<LoadReport> {
    const dict = await readWeights(path, options);
    try {
      return await this.loadStateDict(dict, { strict: options.strict ?? true });
    } catch (err) {
      if (err instanceof Error) err.message = `${path}: ${err.message}`;
      throw err;
    }
  }

  /** Writes every parameter and buffer as safetensors, atomically. */
  async saveWeights(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const dict = await this.stateDict();
    await saveSafetensors(path, dict, { format: 'pt', 'mtpd.module': this.kind, ...metadata });
  }

  /** Plain tensor forward for layer-like modules (no autograd). */
  async forward(inputs: Tensor[]): Promise<Tensor[]> {
    if (!this.handle.info().hasForward) throw new MtpdError('ERR_MTPD_ARGUMENT', `${this.kind} has no plain forward()`);
    return this.enqueue(() => this.handle.forward(inputs));
  }
}

/** Names of everything the addon can build, with a line of documentation each. */
export function listModules(): Record<string, string> {
  return native().listModules();
}
