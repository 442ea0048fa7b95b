import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { loaderFor } from '../../src/train/detection.js';
import { openSplits } from '../../src/train/models.js';
import { stageSeed } from '../../src/train/stage-seed.js';
import { tempDir } from '../helpers.js';

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

t.test("each stage's loader has its own data order; the same stage the same order", async (t) => {
  const dir = tempDir(t);
  await writeSynthDataset({ out: dir, images: 12, valImages: 2, size: 48, seed: 3 });
  const config = parseConfig({ data: { root: dir, batchSize: 2, workers: 0, flip: 0 }, student: { name: 's', arch: 'retinanet_resnet18_fpn' }, teachers: [{ name: 't', arch: 'retinanet_resnet18_fpn' }], seed: 7 });
  const splits = await openSplits(config);
  const order = async (stage: string) => {
    const loader = loaderFor(splits, config, stageSeed(config.seed, stage));
    const ids: number[] = [];
    try {
      for (let i = 0; i < 6; i++) ids.push(...(await loader.next()).imageIds);
    } finally {
      await loader.close();
    }
    return ids;
  };
  const a = await order('mtpd1-r18');
  const b = await order('mtpd2-r34');
  t.equal(a.length, 12);
  t.not(a.join(','), b.join(','), 'two stages, two data orders');
  t.same(await order('mtpd1-r18'), a, 'the same stage replays its own order');
});
