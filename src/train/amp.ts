/**
 * Mixed precision (`schedule.amp`), as torch.autocast: the forward passes of the student, the
 * teachers and the cost matrix under autocast, the losses in float32.
 * - CUDA: float16, with a dynamic loss scaler (steps whose gradients overflow are skipped).
 * - CPU: bfloat16, no scaler (bfloat16 has float32's exponent range). Fast where the CPU computes
 *   bfloat16 itself (AVX-512 BF16 or AMX: recent Xeons, AMD Zen 4 and later); elsewhere oneDNN
 *   emulates it, slower than float32, and the run says so.
 * Results differ from float32 by bfloat16's rounding (8 bits of mantissa), so amp is off by default.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';

/** The config keys that turn mixed precision on: schedule.amp and any model's own train.amp. */
export function ampKeys(config: Config): string[] {
  const keys: string[] = [];
  if (config.schedule.amp) keys.push('schedule.amp');
  const models = [['student', config.student] as const, ...config.teachers.map((t, i) => [`teachers[${i}]`, t] as const)];
  for (const [where, m] of models) if (m.train?.amp) keys.push(`${where}.train.amp`);
  return keys;
}

/** Whether the run's forward passes outside a training step (the cost matrix) use autocast. */
export function ampOn(config: Config): boolean {
  return ampKeys(config).length > 0;
}

/**
 * How this CPU computes bfloat16: 'native' (AVX-512 BF16 or AMX instructions), 'emulated'
 * (AVX-512 without them: oneDNN converts, slower than float32), 'none' (no AVX-512: generic
 * kernels, much slower), or 'unknown' (no /proc/cpuinfo to read, or not an x86 CPU).
 */
export function cpuBfloat16(cpuinfo?: string): 'native' | 'emulated' | 'none' | 'unknown' {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return 'unknown';
    }
  }
  const line = /^flags\s*:(.*)$/m.exec(text);
  if (!line) return 'unknown';
  const flags = new Set((line[1] ?? '').trim().split(/\s+/));
  if (flags.has('avx512_bf16') || flags.has('amx_bf16')) return 'native';
  if (flags.has('avx512bw') && flags.has('avx512vl') && flags.has('avx512dq')) return 'emulated';
  return 'none';
}

/**
 * A warning when mixed precision runs on a CPU that does not compute bfloat16 itself (the run
 * works, slower than float32), else null.
 */
export function ampWarning(config: Config, cpu: ReturnType<typeof cpuBfloat16> = cpuBfloat16()): string | null {
  const keys = ampKeys(config);
  if (!keys.length || config.device.startsWith('cuda') || cpu === 'native') return null;
  const how = cpu === 'emulated' ? 'emulates bfloat16 (AVX-512 without AVX-512 BF16 or AMX)' : cpu === 'none' ? 'has no AVX-512: bfloat16 runs on generic kernels' : 'may not compute bfloat16 itself';
  return `${keys.join(', ')}: mixed precision on the CPU runs in bfloat16, and this CPU ${how}, so it is likely slower than float32; set ${keys[0]} false unless you have measured it`;
}
