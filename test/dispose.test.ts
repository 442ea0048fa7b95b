import t from 'tap';
import { createDetector } from '../src/detector.js';
import { Disposer, withDisposable } from '../src/dispose.js';
import { DistillSession } from '../src/distill/step.js';
import { zeros } from '../src/tensor.js';
import { haveAddon } from './helpers.js';

const image = () => zeros('float32', [3, 64, 64]);
const target = { boxes: [[4, 4, 40, 40]], labels: [1] };
const tiny = { arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 64, normLayer: 'bn' as const, trainableLayers: 5 };

t.test('dispose() frees a detector, its optimizer and a distillation session; later calls throw ERR_MTPD_DISPOSED', async (t) => {
  if (!haveAddon(t)) return;
  const det = await createDetector(tiny);
  const opt = await det.createOptimizer({ lr: 0.01 });
  await det.trainStep(opt, [image()], [target]);
  const teacher = await createDetector(tiny);
  const session = await DistillSession.create(det, [{ name: 't', model: teacher, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }]);
  await session.step({ images: [image()], targets: [target] });
  const distiller = session.teachers[0]?.distiller;
  t.ok(distiller, 'the session built a distiller');

  await session.dispose();
  t.ok(session.disposed && distiller?.disposed, 'the session disposes the distiller it built');
  await t.rejects(session.step({ images: [image()], targets: [target] }), { code: 'ERR_MTPD_DISPOSED', message: /DistillSession\.call\(\): used after dispose\(\)/ });
  t.throws(() => session.setLr(0.1), { code: 'ERR_MTPD_DISPOSED' });
  await det.trainStep(opt, [image()], [target]); // the student and its own optimizer live on

  await det.dispose();
  t.ok(det.disposed);
  await t.rejects(det.predict([image()]), { code: 'ERR_MTPD_DISPOSED', message: /retinanet\.call\(\): used after dispose\(\)/ });
  t.throws(() => det.info(), { code: 'ERR_MTPD_DISPOSED' });
  // The native handle refuses too (a caller that kept it).
  t.throws(() => det.detectorHandle.info(), { code: 'ERR_MTPD_DISPOSED', message: /retinanet\.info\(\): used after dispose\(\)/ });
  t.throws(() => opt.setLr(0.1), { code: 'ERR_MTPD_DISPOSED', message: /the detector it was created for was disposed/ }, 'the optimizer of a disposed detector');
  await opt.dispose(); // still frees its state
  t.throws(() => opt.info(), { code: 'ERR_MTPD_DISPOSED', message: /optimizer\.info\(\): used after dispose\(\)/ });
  await det.dispose(); // idempotent
  await opt.dispose();
  await teacher.dispose();
});

t.test('dispose() waits for the calls already queued', async (t) => {
  if (!haveAddon(t)) return;
  const det = await createDetector(tiny);
  const pending = det.predict([image()]);
  const disposed = det.dispose();
  const [d] = await pending;
  t.ok(d && d.scores.shape.length === 1, 'the queued call finished');
  await disposed;
  t.ok(det.disposed);
});

t.test('await using, withDisposable and Disposer free at the end of the scope, also on errors', async (t) => {
  if (!haveAddon(t)) return;
  let kept: Awaited<ReturnType<typeof createDetector>> | null = null;
  {
    await using det = await createDetector(tiny);
    kept = det;
    t.notOk(det.disposed);
  }
  t.ok(kept.disposed, 'await using');
  let inside: Awaited<ReturnType<typeof createDetector>> | null = null;
  await t.rejects(
    withDisposable(createDetector(tiny), async (det) => {
      inside = det;
      throw new Error('boom');
    }),
    /boom/,
  );
  t.ok(inside!.disposed, 'withDisposable on an error');
  const d = new Disposer();
  const a = d.add(await createDetector(tiny));
  const b = d.add(await createDetector(tiny));
  const opt = d.add(await b.createOptimizer({}));
  await d.dispose();
  t.ok(a.disposed && b.disposed && opt.disposed, 'Disposer frees everything, last added first');
});

/** Resident set size in MB after the collector ran (so what remains is what native code holds). */
function rssMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

t.test('resident memory stays flat over 10 stages of build, train, distill, dispose while the JS objects stay reachable', async (t) => {
  if (!haveAddon(t)) return;
  // Every object is kept in `alive`, so V8's collector cannot free any of them: only dispose()
  // can. Each "stage" holds about 20 MB natively (a student and a teacher, both R34 at 1/4
  // width, an optimizer with momentum, a distiller and the session's optimizer); without
  // dispose() resident memory would grow by about that much per stage.
  const alive: unknown[] = [];
  const rss: number[] = [];
  const conf = { ...tiny, arch: 'retinanet_resnet34_fpn', widthMult: 0.25 };
  for (let stage = 0; stage < 10; stage++) {
    await using owned = new Disposer();
    const student = owned.add(await createDetector(conf));
    const teacher = owned.add(await createDetector(conf));
    const opt = owned.add(await student.createOptimizer({ lr: 0.001 }));
    await student.trainStep(opt, [image()], [target]);
    const session = owned.add(await DistillSession.create(student, [{ name: 't', model: teacher, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' }] } }]));
    await session.step({ images: [image()], targets: [target] });
    alive.push(student, teacher, opt, session);
    const info = student.info();
    if (stage === 0) t.comment(`one model: ${((info.parameters * 4) / 2 ** 20).toFixed(1)} MB of parameters`);
    await owned.dispose();
    rss.push(rssMb());
  }
  t.comment(`RSS after each stage (MB): ${rss.map((r) => r.toFixed(0)).join(' ')}`);
  // The first stages warm up allocator arenas and libtorch's caches; from the third on, flat.
  const settled = rss.slice(2);
  const growth = Math.max(...settled) - (settled[0] as number);
  t.ok(growth < 25, `RSS grows ${growth.toFixed(1)} MB over stages 3..10 (< 25 MB; a leak would be ~20 MB a stage)`);
  t.equal(alive.length, 40);
});
