// The cost of crossing the boundary: a float32 tensor to libtorch and back (ops.toDevice on
// cpu) against a plain memcpy of the same bytes in JS (Float32Array.prototype.slice), as
// throughput ratios. Per-call overhead is shown with a tiny tensor.
import { native } from '../../dist/native.js';

function time(fn, reps) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1e6 / reps;
}

async function timeAsync(fn, reps) {
  await fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6 / reps;
}

const ops = native().ops;
console.log('size        mtpd round trip   JS copy x2   ratio (mtpd / JS)');
for (const n of [16, 1 << 16, 1 << 22]) {
  const t = { dtype: 'float32', shape: [n], data: new Float32Array(n).fill(1) };
  const reps = n > 1e6 ? 20 : 500;
  const ms = await timeAsync(() => ops.toDevice(t, 'cpu'), reps);
  const ref = time(() => t.data.slice().slice(), reps);
  console.log(`${String(n).padEnd(10)}  ${ms.toFixed(4).padStart(10)} ms  ${ref.toFixed(4).padStart(9)} ms   ${(ms / ref).toFixed(2)}x`);
}
