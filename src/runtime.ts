/** Runtime facts and settings: versions, devices, thread count. */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadAddon, loadedBlas, loadedLibtorchPath, native, packageRoot, type HostMemory } from './native.js';
import { cpuBfloat16 } from './train/amp.js';
import { stateDictFromNative, type StateDict } from './weights/safetensors.js';

export interface SystemInfo {
  mtpd: string;
  node: string;
  platform: string;
  libtorch: { built: string; runtime: string; cxx11Abi: boolean; loadedFrom: string | null };
  cuda: { built: boolean; available: boolean; deviceCount: number };
  threads: { intraOp: number; cores: number };
  addon: { path: string; kind: string };
  /** The BLAS behind Linear layers and attention (see loadedBlas). */
  blas: { kind: string; path: string } | null;
  /** How the CPU computes bfloat16, the CPU's mixed precision (schedule.amp; see cpuBfloat16). */
  cpu: { bfloat16: ReturnType<typeof cpuBfloat16> };
}

/** A warning when libtorch runs on netlib's reference BLAS (Debian's default), else null. */
export function blasWarning(): string | null {
  const b = loadedBlas();
  if (b?.kind !== 'reference') return null;
  return `libtorch is using the reference BLAS (${b.path}): Linear layers and attention (Swin) run 5-10x slower than with OpenBLAS; on Debian: apt-get install libopenblas0-openmp`;
}

export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require(join(packageRoot, 'package.json')) as { version: string }).version;
}

/** Sets the intra-op thread count for native work; 0 or undefined means all cores. */
export function setThreads(threads?: number): number {
  return native().setNumThreads(threads ?? 0);
}

/**
 * The caching host allocator's figures: large CPU tensor buffers live and cached for reuse (bytes),
 * the largest live total so far, and cache hits/misses. `cachingAllocator` is false when the
 * process started with MTPD_HOST_ALLOCATOR=system (libtorch's own allocator).
 */
export function hostMemory(): HostMemory {
  return native().hostMemory();
}

/** Frees every buffer the caching host allocator keeps for reuse (live tensors are untouched). */
export function releaseHostMemory(): void {
  native().releaseHostMemory();
}

/** Seeds libtorch's default generators (weight initialization, random ops). */
export function setSeed(seed: number): void {
  native().setSeed(seed);
}

/**
 * States of libtorch's default random generators ("cpu", "cuda:N"), for checkpoints: random ops
 * in training (stochastic depth, dropout) continue the same sequence after a resume.
 */
export function rngState(): StateDict {
  return stateDictFromNative(native().rngState());
}

/** Restores rngState(); any subset of generators (errors name the generator). */
export function setRngState(state: StateDict): void {
  native().setRngState([...state.keys()], [...state.values()], true);
}

/** Validates a device string ("cpu", "cuda", "cuda:N") against the loaded libtorch. */
export function checkDevice(device: string): string {
  return native().checkDevice(device);
}

export function systemInfo(options: { threads?: number | undefined } = {}): SystemInfo {
  const addon = loadAddon();
  // Only an explicit count changes the setting: asking for facts must not undo setThreads().
  if (options.threads !== undefined) addon.binding.setNumThreads(options.threads);
  const rt = addon.binding.runtimeInfo();
  const threads = rt.numThreads;
  return {
    mtpd: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    libtorch: { built: rt.torchVersion, runtime: rt.torchVersionRuntime, cxx11Abi: rt.cxx11Abi, loadedFrom: loadedLibtorchPath() },
    cuda: { built: rt.cudaBuilt, available: rt.cudaAvailable, deviceCount: rt.cudaDeviceCount },
    threads: { intraOp: threads, cores: rt.hardwareConcurrency },
    addon: { path: addon.path, kind: addon.kind },
    blas: loadedBlas(),
    cpu: { bfloat16: cpuBfloat16() },
  };
}

export function formatSystemInfo(i: SystemInfo): string {
  const rows: [string, string][] = [
    ['mtpd', i.mtpd],
    ['node', `${i.node} (${i.platform})`],
    ['libtorch', `${i.libtorch.runtime} (addon built against ${i.libtorch.built}, cxx11 abi ${i.libtorch.cxx11Abi ? 'on' : 'off'})`],
    ['libtorch loaded from', i.libtorch.loadedFrom ?? 'unknown'],
    ['cuda', i.cuda.built ? (i.cuda.available ? `available, ${i.cuda.deviceCount} device(s)` : 'built, no device visible') : 'not built into this libtorch'],
    ['threads', `${i.threads.intraOp} intra-op (${i.threads.cores} cores)`],
    ['addon', `${i.addon.path} (${i.addon.kind})`],
    ['blas', i.blas ? `${i.blas.kind} (${i.blas.path})${i.blas.kind === 'reference' ? ': slow; apt-get install libopenblas0-openmp' : ''}` : 'unknown'],
    ['cpu bfloat16', { native: 'native (AVX-512 BF16 or AMX): schedule.amp on the CPU is fast', emulated: 'emulated (AVX-512 only): schedule.amp on the CPU is slower than float32', none: 'no AVX-512: schedule.amp on the CPU is slow', unknown: 'unknown' }[i.cpu.bfloat16]],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
