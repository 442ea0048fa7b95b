import t from 'tap';
import { stageSeed } from '../../src/train/stage-seed.js';

t.test('a stable uint32 per (run seed, stage name)', async (t) => {
  const names = ['train:student', 'mtpd1-r18', 'mtpd2-r34', 'longer-2x', 'direct-r34', 'ensemble-r18+r34', 'orders@10:r18>r34'];
  const seeds = names.map((n) => stageSeed(0, n));
  t.equal(new Set(seeds).size, names.length, 'every stage its own seed');
  for (const s of seeds) t.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
  t.equal(stageSeed(0, 'mtpd1-r18'), seeds[1], 'the same again (a rerun, a resume)');
  t.not(stageSeed(1, 'mtpd1-r18'), seeds[1], 'another run seed, other seeds');
  // Golden: the hash must not change between versions (it decides every stage's data order).
  t.equal(stageSeed(0, 'mtpd1-r18'), 296245257);
});
