/**
 * Tensors cross the native boundary as plain descriptors: `{dtype, shape, data}` with a
 * TypedArray of the matching kind (float16 travels as raw bits in a Uint16Array, bool as 0/1
 * bytes in a Uint8Array, int64 as a BigInt64Array).
 */
export type DType = 'float32' | 'float64' | 'float16' | 'int32' | 'int64' | 'uint8' | 'bool';

export interface DataOf {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export interface Tensor<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: DataOf[D];
}

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'int32', 'int64', 'uint8', 'bool'];

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  bool: 1,
};

type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): DataOf[DType]; new (length: number): DataOf[DType] };

const CTORS: Record<DType, ArrayCtor> = {
  float32: Float32Array as unknown as ArrayCtor,
  float64: Float64Array as unknown as ArrayCtor,
  float16: Uint16Array as unknown as ArrayCtor,
  int32: Int32Array as unknown as ArrayCtor,
  int64: BigInt64Array as unknown as ArrayCtor,
  uint8: Uint8Array as unknown as ArrayCtor,
  bool: Uint8Array as unknown as ArrayCtor,
};

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A zero-filled tensor. */
export function zeros<D extends DType>(dtype: D, shape: number[]): Tensor<D> {
  return { dtype, shape: [...shape], data: new CTORS[dtype](numel(shape)) as DataOf[D] };
}

/** Wraps raw little-endian bytes as a tensor, copying when the bytes are not aligned. */
export function fromBytes<D extends DType>(dtype: D, shape: number[], bytes: Uint8Array): Tensor<D> {
  const n = numel(shape);
  const size = BYTES_PER_ELEMENT[dtype];
  if (bytes.byteLength !== n * size) {
    throw new RangeError(`${dtype} tensor of shape [${shape.join(', ')}] needs ${n * size} bytes, got ${bytes.byteLength}`);
  }
  let src = bytes;
  if (src.byteOffset % size !== 0) src = new Uint8Array(bytes); // realign by copying
  return { dtype, shape: [...shape], data: new CTORS[dtype](src.buffer, src.byteOffset, n) as DataOf[D] };
}

/** The tensor's bytes (a view, no copy). */
export function toBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Build a tensor from plain numbers (or bigints for int64). */
export function tensor<D extends DType>(dtype: D, shape: number[], values: ArrayLike<number | bigint>): Tensor<D> {
  const t = zeros(dtype, shape);
  if (values.length !== t.data.length) {
    throw new RangeError(`shape [${shape.join(', ')}] needs ${t.data.length} values, got ${values.length}`);
  }
  const out = t.data as unknown as { [i: number]: number | bigint };
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number | bigint;
    if (dtype === 'int64') out[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
    else if (dtype === 'float16') out[i] = float32ToFloat16Bits(Number(v));
    else if (dtype === 'bool') out[i] = v ? 1 : 0;
    else out[i] = Number(v);
  }
  return t;
}

/** Element values as JS numbers (float16 decoded, int64 converted). */
export function toNumbers(t: Tensor): number[] {
  const out = new Array<number>(t.data.length);
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i] as number | bigint;
    out[i] = t.dtype === 'float16' ? float16BitsToFloat32(v as number) : Number(v);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary32 -> binary16 bits, round to nearest even (as torch's .half()). */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into exponent: still right
  e = half;
  return sign | e;
}

/** binary16 bits -> number. */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
