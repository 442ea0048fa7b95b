/**
 * Mixed precision (`schedule.amp`): CUDA autocast with a dynamic loss scaler. The native
 * optimizer refuses it on the CPU; this check says so before anything is built, naming the key.
 */
import type { Config } from '../config/schema.js';
import { MtpdError } from '../errors.js';

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

/** Throws ERR_MTPD_CONFIG naming the key when mixed precision is asked for off CUDA. */
export function checkAmp(config: Config): void {
  const keys = ampKeys(config);
  if (keys.length && !config.device.startsWith('cuda')) {
    throw new MtpdError(
      'ERR_MTPD_CONFIG',
      `${keys.join(', ')}: mixed precision needs device cuda (device is ${config.device}); set ${keys[0]} false or device cuda`,
    );
  }
}
