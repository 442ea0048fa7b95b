// The caching host allocator (native/core/host_allocator.*): large buffers are reused, the cache
// stays within its bound (1.25 times the largest live total; MTPD_HOST_CACHE_SLACK), freed space serves other sizes, and results are the same bits as with libtorch's own
// allocator (reused buffers are not zeroed, so code that relied on fresh zero pages would differ).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { hostMemory, releaseHostMemory } from '../../src/index.js';
import { native } from '../../src/native.js';
import { haveAddon } from '../helpers.js';

t.test('buffers of 1 MiB and up are cached and reused across sizes, within the bound', async (t) => {
  if (!haveAddon(t)) return;
  t.equal(hostMemory().cachingAllocator, true);
  releaseHostMemory();
  // (4096 x 1024) @ (1024 x 2304): a 36 MiB result, freed once copied out.
  const a = { dtype: 'float32' as const, shape: [4096, 1024], data: new Float32Array(4096 * 1024).fill(0.5) };
  const b = { dtype: 'float32' as const, shape: [1024, 2304], data: new Float32Array(1024 * 2304).fill(0.25) };
  const first = await native().ops.matmul(a, b, 'cpu');
  const m1 = hostMemory();
  t.equal(m1.liveBytes, 0, 'nothing large is live between calls');
  t.ok(m1.cachedBytes >= 36 * 2 ** 20, `the result's buffer is kept after use (${m1.cachedBytes} B)`);
  t.equal(m1.boundBytes, Math.floor(1.25 * m1.peakLiveBytes), 'the bound: 1.25 times the largest live total (slack 0.25)');
  t.ok(m1.liveBytes + m1.cachedBytes <= m1.boundBytes, 'live + cached within the bound');
  // (4096 x 1024) @ (1024 x 1920): a 30 MiB result. It takes the free 36 MiB block, split; the
  // 6 MiB left over stays free, and merges back when the result is freed.
  const c = { dtype: 'float32' as const, shape: [1024, 1920], data: new Float32Array(1024 * 1920).fill(0.25) };
  const third = await native().ops.matmul(a, c, 'cpu');
  const m2 = hostMemory();
  t.ok(m2.hits > m1.hits, 'a smaller product reuses freed space');
  t.equal(m2.misses, m1.misses, 'without a new segment');
  t.equal(m2.segmentCount, m1.segmentCount, 'segments unchanged');
  t.equal((third.data as Float32Array)[4096 * 1920 - 1], 128);
  // The 36 MiB product again: only the merged block holds it.
  const second = await native().ops.matmul(a, b, 'cpu');
  const m3 = hostMemory();
  t.ok(m3.hits > m2.hits, 'the first size again is served from the merged block');
  t.equal(m3.misses, m2.misses, 'without a new segment');
  t.same(Array.from((second.data as Float32Array).subarray(0, 4)), Array.from((first.data as Float32Array).subarray(0, 4)));
  t.equal((second.data as Float32Array)[4096 * 2304 - 1], 128);
  t.equal(m3.cachedBytes, m1.cachedBytes, 'the free space is what it was');
  releaseHostMemory();
  const m4 = hostMemory();
  t.equal(m4.cachedBytes, 0, 'releaseHostMemory gives every empty segment back');
  t.equal(m4.segmentCount, 0);
});

t.test('concurrent products of many sizes get disjoint buffers and exact results', async (t) => {
  if (!haveAddon(t)) return;
  // Products run on the addon's worker threads, four at a time: each result (1-8 MiB, sizes drawn
  // from a fixed-seed generator) is a constant k * x * y, so a block handed to two calls at once,
  // or a split or merge that lost track of its bounds, shows up as a wrong value.
  let seed = 12345;
  const rand = (lo: number, hi: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return lo + (seed % (hi - lo + 1));
  };
  const before = hostMemory();
  let bad = 0;
  for (let round = 0; round < 24; round++) {
    const jobs = Array.from({ length: 4 }, (_, j) => {
      const m = rand(256, 1024), k = rand(8, 64), n = rand(1024, 2048);
      const x = 0.5 * (j + 1), y = 0.25 * ((round % 3) + 1);
      const a = { dtype: 'float32' as const, shape: [m, k], data: new Float32Array(m * k).fill(x) };
      const b = { dtype: 'float32' as const, shape: [k, n], data: new Float32Array(k * n).fill(y) };
      return native().ops.matmul(a, b, 'cpu').then((r) => {
        const d = r.data as Float32Array;
        const want = k * x * y;
        if (d.length !== m * n) bad++;
        for (let i = 0; i < d.length; i++) if (d[i] !== want) { bad++; break; }
      });
    });
    await Promise.all(jobs);
  }
  t.equal(bad, 0, 'every product exact');
  const after = hostMemory();
  t.equal(after.liveBytes, 0, 'nothing large left live');
  t.ok(after.hits > before.hits, `freed space was reused (${after.hits - before.hits} hits, ${after.misses - before.misses} new segments)`);
  t.ok(after.liveBytes + after.cachedBytes <= after.boundBytes, 'segments within the bound once all is freed');
  releaseHostMemory();
  t.equal(hostMemory().segmentCount, 0, 'every segment empty at the end');
});

function child(env: Record<string, string>): { losses: unknown; detections: unknown; memory: { cachingAllocator: boolean; hits: number; peakLiveBytes: number; boundBytes: number } } {
  const r = spawnSync(process.execPath, [...process.execArgv, join(import.meta.dirname, 'host-allocator-child.ts')], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

t.test('training and inference give the same bits with the cache and with libtorch allocator', async (t) => {
  if (!haveAddon(t)) return;
  const cached = child({});
  const system = child({ MTPD_HOST_ALLOCATOR: 'system' });
  t.equal(cached.memory.cachingAllocator, true);
  t.ok(cached.memory.hits > 0, `large buffers were reused (${cached.memory.hits} hits)`);
  t.equal(system.memory.cachingAllocator, false, 'MTPD_HOST_ALLOCATOR=system keeps libtorch allocator');
  t.same(cached.losses, system.losses, 'train-step losses identical');
  t.same(cached.detections, system.detections, 'detections identical');
});

t.test('MTPD_HOST_CACHE_SLACK sets the bound; results are the same bits at every slack', async (t) => {
  if (!haveAddon(t)) return;
  const tight = child({ MTPD_HOST_CACHE_SLACK: '0' });
  const wide = child({ MTPD_HOST_CACHE_SLACK: '3' });
  const bad = child({ MTPD_HOST_CACHE_SLACK: 'lots' });
  t.ok(tight.memory.peakLiveBytes > 0);
  t.equal(tight.memory.boundBytes, tight.memory.peakLiveBytes, 'slack 0: the largest live total');
  t.equal(wide.memory.boundBytes, 4 * wide.memory.peakLiveBytes, 'slack 3: four times it');
  t.equal(bad.memory.boundBytes, Math.floor(1.25 * bad.memory.peakLiveBytes), 'an unreadable value keeps the default (0.25)');
  t.same(tight.losses, wide.losses, 'train-step losses identical');
  t.same(tight.detections, wide.detections, 'detections identical');
});
