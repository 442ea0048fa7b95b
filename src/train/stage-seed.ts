/**
 * Per-stage seeds: every training stage of a run gets its own data order (the loader's seed),
 * its own default-generator stream (libtorch's setSeed before the stage builds its models and
 * distillers: initialization, stochastic depth) and its own distiller seed (MGD's masks),
 * derived from the run seed and the stage's name by a stable hash. Two stages of one run no
 * longer replay the same batches and masks, and a rerun (or a resumed run) of a stage gets the
 * same seed again.
 */
import { createHash } from 'node:crypto';

/** A uint32 seed for stage `stage` of a run seeded `runSeed`: sha256("mtpd-stage", runSeed, stage). */
export function stageSeed(runSeed: number, stage: string): number {
  const h = createHash('sha256').update(`mtpd-stage\0${runSeed}\0${stage}`).digest();
  return h.readUInt32LE(0);
}
