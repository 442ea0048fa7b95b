// The caching host allocator (native/core/host_allocator.*): large buffers are reused, the cache
// stays within its bound (twice the largest live total; MTPD_HOST_CACHE_SLACK), and results are the same bits as with libtorch's own
// allocator (reused buffers are not zeroed, so code that relied on fresh zero pages would differ).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { hostMemory, releaseHostMemory } from '../../src/index.js';
import { native } from '../../src/native.js';
import { haveAddon } from '../helpers.js';

t.test('buffers of 1 MiB and up are cached and reused, within the bound', async (t) => {
  if (!haveAddon(t)) return;
  t.equal(hostMemory().cachingAllocator, true);
  // (4096 x 1024) @ (1024 x 2304): a 36 MiB result, freed once copied out.
  const a = { dtype: 'float32' as const, shape: [4096, 1024], data: new Float32Array(4096 * 1024).fill(0.5) };
  const b = { dtype: 'float32' as const, shape: [1024, 2304], data: new Float32Array(1024 * 2304).fill(0.25) };
  const first = await native().ops.matmul(a, b, 'cpu');
  const m1 = hostMemory();
  t.ok(m1.cachedBytes >= 36 * 2 ** 20, `the result's buffer is cached after use (${m1.cachedBytes} B)`);
  const second = await native().ops.matmul(a, b, 'cpu');
  const m2 = hostMemory();
  t.ok(m2.hits > m1.hits, 'the second product reuses it');
  t.equal(m2.misses, m1.misses, 'without a new allocation');
  t.same(Array.from((second.data as Float32Array).subarray(0, 4)), Array.from((first.data as Float32Array).subarray(0, 4)));
  t.equal((second.data as Float32Array)[4096 * 2304 - 1], 128);
  t.equal(m2.boundBytes, 2 * m2.peakLiveBytes, 'the bound: twice the largest live total (slack 1)');
  t.ok(m2.liveBytes + m2.cachedBytes <= m2.boundBytes, 'live + cached never above the bound');
  // (4096 x 1024) @ (1024 x 1920): 30 MiB, two size classes below the cached 36 MiB buffer, which
  // it takes instead of mapping a new one.
  const c = { dtype: 'float32' as const, shape: [1024, 1920], data: new Float32Array(1024 * 1920).fill(0.25) };
  const third = await native().ops.matmul(a, c, 'cpu');
  const m3 = hostMemory();
  t.ok(m3.hits > m2.hits, 'a smaller product reuses a cached buffer of a nearby larger class');
  t.equal(m3.misses, m2.misses, 'without a new allocation');
  t.equal((third.data as Float32Array)[4096 * 1920 - 1], 128);
  t.ok(m3.liveBytes + m3.cachedBytes <= m3.boundBytes, 'still within the bound');
  releaseHostMemory();
  t.equal(hostMemory().cachedBytes, 0, 'releaseHostMemory empties the cache');
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
  t.equal(bad.memory.boundBytes, 2 * bad.memory.peakLiveBytes, 'an unreadable value keeps the default (1)');
  t.same(tight.losses, wide.losses, 'train-step losses identical');
  t.same(tight.detections, wide.detections, 'detections identical');
});
