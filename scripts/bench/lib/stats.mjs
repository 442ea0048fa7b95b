// What the benchmarks that run whole processes in turn share: one process's JSON line, and the
// median with its spread over rounds.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';

/** The detectors workers' settings from the environment (each bench gives its own defaults). */
export function workerSettings(defaults) {
  const env = process.env;
  return {
    isa: benchIsa(env), // checked before anything runs
    reps: env.MTPD_BENCH_REPS ?? defaults.reps,
    rounds: Number(env.MTPD_BENCH_ROUNDS ?? 3),
    size: env.MTPD_BENCH_SIZE ?? '512',
    batch: env.MTPD_BENCH_BATCH ?? '2',
    threads: env.MTPD_BENCH_THREADS ?? String(cpus().length),
    archs: (env.MTPD_BENCH_ARCHS ?? defaults.archs).split(','),
  };
}

// MTPD_BENCH_ISA=avx2 caps the instruction set of both sides' kernels at AVX2 (ATen's CPU
// dispatch, oneDNN's JIT and OpenBLAS's kernels), to measure on an AVX-512 machine what a CPU
// without AVX-512 runs (x86-64 only). Unset or "native": whatever the machine has.
const ISA_ENV = {
  native: {},
  avx2: { ATEN_CPU_CAPABILITY: 'avx2', ONEDNN_MAX_CPU_ISA: 'AVX2', OPENBLAS_CORETYPE: 'Haswell' },
};

/** MTPD_BENCH_ISA's value ("native" when unset); any other name ends the process with code 2. */
function benchIsa(env) {
  const isa = env.MTPD_BENCH_ISA || 'native';
  if (!Object.hasOwn(ISA_ENV, isa)) {
    console.error(`MTPD_BENCH_ISA must be one of ${Object.keys(ISA_ENV).join(', ')}, got "${isa}"`);
    process.exit(2);
  }
  return isa;
}

/** The environment of the measured processes: this one's, with MTPD_BENCH_ISA's caps. */
function benchEnv(env = process.env) {
  return { ...env, ...ISA_ENV[benchIsa(env)] };
}

/** Runs one process and returns the JSON of its last output line; null (and its stderr printed) if it failed. */
export function runJson(cmd, args, env = benchEnv()) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 1_200_000, env });
  if (r.status !== 0) {
    console.error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

export function median(a) {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** "median (min..max)" with `d` decimals. */
export function spread(a, d = 1) {
  return `${median(a).toFixed(d)} (${Math.min(...a).toFixed(d)}..${Math.max(...a).toFixed(d)})`;
}
