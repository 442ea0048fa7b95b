/**
 * The one place that loads the native addon. It tries, in order: the MTPD_ADDON override,
 * build/Release (a source build), prebuilds/<platform>-<arch> (a packaged binary), and on
 * failure says what it tried and which libtorch each candidate was built against.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MtpdError } from './errors.js';
import type { Tensor } from './tensor.js';

export interface RawRuntimeInfo {
  torchVersion: string;
  torchVersionRuntime: string;
  torchCmakeVersion: string;
  cxx11Abi: boolean;
  cudaBuilt: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  numThreads: number;
  numInteropThreads: number;
  hardwareConcurrency: number;
  parallelInfo: string;
  napiVersion: number;
}

export interface RawLoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
  loaded: number;
}

export interface RawModuleInfo {
  name: string;
  device: string;
  training: boolean;
  parameters: number;
  trainableParameters: number;
  hasForward: boolean;
}

export interface RawHvpResult {
  losses: Record<string, number>;
  names: string[];
  gradient: Tensor<'float32'>[];
  product: Tensor<'float32'>[];
}

export interface RawParameterInfo {
  name: string;
  shape: number[];
  trainable: boolean;
}

/** A libtorch module held by the addon. One call in flight at a time (else ERR_MTPD_BUSY). */
export interface NativeModuleHandle {
  info(): RawModuleInfo;
  setTraining(on: boolean): void;
  stateDict(): Promise<{ names: string[]; tensors: Tensor[] }>;
  loadStateDict(names: string[], tensors: Tensor[], strict: boolean): Promise<RawLoadReport>;
  to(device: string): Promise<string>;
  forward(inputs: Tensor[]): Promise<Tensor[]>;
  /** Frees the native module now; later calls throw ERR_MTPD_DISPOSED (idempotent). */
  dispose(): void;
}

/** What the caching host allocator holds (native/core/host_allocator.h). */
export interface HostMemory {
  cachingAllocator: boolean;
  liveBytes: number;
  cachedBytes: number;
  peakLiveBytes: number;
  /** Segments (live + cached) are kept within it where they can be: (1 + MTPD_HOST_CACHE_SLACK, default 0.25) x peakLiveBytes. */
  boundBytes: number;
  /** Segments held from the system (each holds live and free blocks). */
  segmentCount: number;
  hits: number;
  misses: number;
}

/** The addon's exports, as src/ sees them. */
export interface Binding {
  runtimeInfo(): RawRuntimeInfo;
  setNumThreads(threads: number): number;
  setSeed(seed: number): void;
  /** The caching host allocator's figures (bytes); cachingAllocator false under MTPD_HOST_ALLOCATOR=system. */
  hostMemory(): HostMemory;
  /** Frees the caching host allocator's cached buffers (live tensors are untouched). */
  releaseHostMemory(): void;
  rngState(): { names: string[]; tensors: Tensor[] };
  setRngState(names: string[], tensors: Tensor[], strict: boolean): void;
  listModules(): Record<string, string>;
  checkDevice(device: string): string;
  createModule(name: string, optionsJson: string, device: string): Promise<NativeModuleHandle>;
  /** H v of a detector's detection loss (double backward) w.r.t. the named parameters, in its current mode. */
  detectorHvp(detector: unknown, images: Tensor[], targets: unknown[], names: string[], vectors: Tensor[]): Promise<RawHvpResult>;
  /** A detector's parameters: dotted names, shapes, whether they train. */
  detectorParameters(detector: unknown): RawParameterInfo[];
  ops: {
    matmul(a: Tensor, b: Tensor, device: string): Promise<Tensor>;
    toDevice(t: Tensor, device: string): Promise<Tensor>;
  };
}

/** What a binary was built against (mtpd.json beside the .node). */
export interface BuildMeta {
  torchVersion: string;
  torchDir?: string;
  torchLibDir?: string;
  cuda: boolean;
  /** The CUDA toolkit a CUDA libtorch was built with ("12.1"), when known. */
  cudaVersion?: string;
  cxx11Abi: boolean;
  compiler?: string;
  platform?: string;
  arch?: string;
  napiVersion?: number;
  /** The prebuild's flavour tag, `torch<major.minor>-cpu` or `torch<major.minor>-cu<NNN>` (prebuilt binaries only). */
  tag?: string;
}

export interface LoadedAddon {
  binding: Binding;
  path: string;
  kind: 'env' | 'build' | 'prebuild';
  meta: BuildMeta | null;
}

export interface LoadOptions {
  /** Package root (the folder with package.json). */
  root?: string;
  env?: NodeJS.ProcessEnv;
  platform?: string;
  arch?: string;
}

/** The libtorch a machine has, as the loader sees it before loading anything. */
export interface InstalledLibtorch {
  version: string;
  where: string;
  /** true: a CUDA build (libtorch_cuda beside libtorch_cpu, or a `+cuNNN` build-version); false: CPU only. */
  cuda: boolean;
  /** "12.1" from a `+cu121` build-version, when known. */
  cudaVersion?: string;
}

export const packageRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function readMeta(nodePath: string): BuildMeta | null {
  const p = join(dirname(nodePath), 'mtpd.json');
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as BuildMeta;
  } catch {
    return null;
  }
}

function majorMinor(v: string): string {
  const m = /^(\d+)\.(\d+)/.exec(v);
  return m ? `${m[1]}.${m[2]}` : v;
}

function cudaFromBuildVersion(v: string): string | undefined {
  const m = /\+cu(\d+)(\d)\b/.exec(v);
  return m ? `${m[1]}.${m[2]}` : undefined;
}

/**
 * The libtorch this machine would load, without loading it: $LIBTORCH/build-version,
 * Torch_DIR's libtorch, or a versioned libtorch_cpu.so in the system library folders; CUDA when
 * libtorch_cuda sits beside libtorch_cpu.
 */
export function detectInstalledLibtorch(env: NodeJS.ProcessEnv = process.env): InstalledLibtorch | null {
  const roots: string[] = [];
  if (env.LIBTORCH) roots.push(env.LIBTORCH);
  if (env.Torch_DIR) roots.push(resolve(env.Torch_DIR, '..', '..', '..'));
  const hasCudaLib = (dir: string): boolean => {
    try {
      return readdirSync(dir).some((n) => /^libtorch_cuda\.(so|dylib)/.test(n));
    } catch {
      return false;
    }
  };
  for (const r of roots) {
    const f = join(r, 'build-version');
    if (existsSync(f)) {
      const version = readFileSync(f, 'utf8').trim();
      const cudaVersion = cudaFromBuildVersion(version);
      const found: InstalledLibtorch = { version, where: r, cuda: cudaVersion !== undefined || hasCudaLib(join(r, 'lib')) };
      if (cudaVersion) found.cudaVersion = cudaVersion;
      return found;
    }
  }
  const dirs = [...roots.map((r) => join(r, 'lib')), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/lib', '/usr/lib'];
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    const hit = names.map((n) => /^libtorch_cpu\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(n)).find((m) => m);
    if (hit?.[1]) return { version: hit[1], where: join(d, hit[0]), cuda: hasCudaLib(d) };
  }
  return null;
}

/**
 * A prebuilt binary's flavour tag from what it was built against: `torch1.13-cpu`,
 * `torch2.1-cu121`. Prebuilt binaries live in prebuilds/<platform>-<arch>-<tag>/.
 */
export function prebuildTag(meta: { torchVersion: string; cuda: boolean; cudaVersion?: string | undefined }): string {
  const flavour = meta.cuda ? `cu${(meta.cudaVersion ?? '').replace(/\./g, '') || cudaFromBuildVersion(meta.torchVersion)?.replace('.', '') || ''}` : 'cpu';
  return `torch${majorMinor(meta.torchVersion)}-${flavour}`;
}

/**
 * The prebuilt binaries for a platform, best fit first: prebuilds/<platform>-<arch>-<tag>/mtpd.node
 * (and the untagged prebuilds/<platform>-<arch>/ of older packages). A folder whose tag names the
 * installed libtorch's version and flavour comes first.
 */
export function prebuildCandidates(root: string, platform: string, arch: string, installed: InstalledLibtorch | null): string[] {
  const plat = `${platform}-${arch}`;
  let names: string[];
  try {
    names = readdirSync(join(root, 'prebuilds'));
  } catch {
    names = [];
  }
  const want = installed ? `${plat}-torch${majorMinor(installed.version)}-${installed.cuda ? 'cu' : 'cpu'}` : null;
  const score = (n: string): number => (want && n.startsWith(want) ? 0 : n === plat ? 2 : 1);
  const found = names
    .filter((n) => n === plat || n.startsWith(`${plat}-torch`))
    .filter((n) => existsSync(join(root, 'prebuilds', n, 'mtpd.node')))
    .sort((a, b) => score(a) - score(b) || b.localeCompare(a));
  return found.map((n) => join(root, 'prebuilds', n, 'mtpd.node'));
}

function libtorchLoadedFrom(): string | null {
  try {
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const m = /\s(\/\S*libtorch_cpu\.(?:so|dylib)\S*)$/m.exec(maps);
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The BLAS libtorch's matrix products (Linear layers, attention) run on, from the loaded
 * libraries: "openblas", "mkl", "reference" (netlib's unoptimized BLAS, Debian's default
 * libblas3: 5-10x slower), or null when it cannot be told.
 */
export function loadedBlas(): { kind: 'openblas' | 'mkl' | 'reference' | 'other'; path: string } | null {
  try {
    const maps = readFileSync('/proc/self/maps', 'utf8');
    if (/libmkl_\w+\.so/.test(maps)) return { kind: 'mkl', path: /\s(\/\S*libmkl_\w+\.so\S*)$/m.exec(maps)?.[1] ?? 'libmkl' };
    const m = /\s(\/\S*lib(?:open)?blas[^/\s]*\.so\S*)$/m.exec(maps);
    if (!m) return null;
    const path = m[1] as string;
    return { kind: /openblas/.test(path) ? 'openblas' : /\/blas\/libblas\.so/.test(path) ? 'reference' : 'other', path };
  } catch {
    return null;
  }
}

let cached: LoadedAddon | null = null;

/** Loads (once) and returns the addon, or throws ERR_MTPD_ADDON_NOT_FOUND / _INCOMPATIBLE. */
export function loadAddon(options: LoadOptions = {}): LoadedAddon {
  const useCache = !options.root && !options.env && !options.platform && !options.arch;
  if (useCache && cached) return cached;
  const root = options.root ?? packageRoot;
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const require = createRequire(join(root, 'package.json'));

  const installed = detectInstalledLibtorch(env);
  const candidates: { kind: LoadedAddon['kind']; path: string }[] = [];
  if (env.MTPD_ADDON) candidates.push({ kind: 'env', path: resolve(env.MTPD_ADDON) });
  candidates.push({ kind: 'build', path: join(root, 'build', 'Release', 'mtpd.node') });
  const prebuilt = prebuildCandidates(root, platform, arch, installed);
  for (const path of prebuilt) candidates.push({ kind: 'prebuild', path });

  const tried: string[] = [];
  if (prebuilt.length === 0) tried.push(`${join(root, 'prebuilds', `${platform}-${arch}-<torch tag>`, 'mtpd.node')}: no prebuilt binary for ${platform}-${arch}`);
  let incompatible = false;
  for (const c of candidates) {
    if (!existsSync(c.path)) {
      if (c.kind !== 'prebuild') tried.push(`${c.path}: not found${c.kind === 'env' ? ' (from MTPD_ADDON)' : ''}`);
      continue;
    }
    const meta = readMeta(c.path);
    const builtFor = meta ? `libtorch ${meta.torchVersion}${meta.cuda ? ' (CUDA)' : ' (CPU)'}` : 'an unknown libtorch';
    if (c.kind === 'prebuild' && meta) {
      if (meta.platform && meta.arch && (meta.platform !== platform || meta.arch !== arch)) {
        tried.push(`${c.path}: built for ${meta.platform}-${meta.arch}, this is ${platform}-${arch}`);
        incompatible = true;
        continue;
      }
      if (installed && majorMinor(installed.version) !== majorMinor(meta.torchVersion)) {
        tried.push(
          `${c.path}: built against ${builtFor}, but this machine has libtorch ${installed.version} (${installed.where}); ` +
            'rebuild from source (npm rebuild mtpd) or install the matching libtorch',
        );
        incompatible = true;
        continue;
      }
      if (installed && installed.cuda !== meta.cuda) {
        tried.push(
          `${c.path}: built against ${builtFor}, but this machine's libtorch ${installed.version} (${installed.where}) is a ` +
            `${installed.cuda ? 'CUDA' : 'CPU-only'} build; rebuild from source (npm rebuild mtpd) or install the matching libtorch`,
        );
        incompatible = true;
        continue;
      }
    }
    let binding: Binding;
    try {
      binding = require(c.path) as Binding;
    } catch (err) {
      tried.push(`${c.path} (built against ${builtFor}): ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    const rt = binding.runtimeInfo();
    if (majorMinor(rt.torchVersion) !== majorMinor(rt.torchVersionRuntime) && rt.torchVersionRuntime !== 'unknown') {
      tried.push(`${c.path}: compiled against libtorch ${rt.torchVersion} but loaded libtorch ${rt.torchVersionRuntime}`);
      incompatible = true;
      continue;
    }
    const loaded: LoadedAddon = { binding, path: c.path, kind: c.kind, meta };
    if (useCache) cached = loaded;
    return loaded;
  }
  const expected = installed;
  const message = [
    'mtpd: could not load the native addon. Tried:',
    ...tried.map((t) => `  - ${t}`),
    `libtorch on this machine: ${expected ? `${expected.version}${expected.cuda ? ' (CUDA)' : ' (CPU)'} (${expected.where})` : 'none found'}`,
    'To build from source: install libtorch (Debian/Ubuntu: apt-get install libtorch-dev nlohmann-json3-dev;',
    'elsewhere set LIBTORCH=/path/to/libtorch), then run `npm run build:native` (or `npm rebuild mtpd`).',
  ].join('\n');
  throw new MtpdError(incompatible ? 'ERR_MTPD_ADDON_INCOMPATIBLE' : 'ERR_MTPD_ADDON_NOT_FOUND', message);
}

/** The loaded addon's exports. */
export function native(): Binding {
  return loadAddon().binding;
}

/** Where libtorch was mapped from, once the addon is loaded. */
export function loadedLibtorchPath(): string | null {
  return libtorchLoadedFrom();
}
