/**
 * Reads PyTorch `.pth`/`.pt` files as `torch.save` writes them (PyTorch >= 1.6): a zip archive
 * holding `<prefix>/data.pkl` (pickle) and one raw storage per tensor under `<prefix>/data/<key>`.
 * Nothing in the file is executed: the unpickler resolves only the globals a state dict needs.
 */
import yauzl from 'yauzl';
import { MtpdError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, fromBytes, numel, type Tensor } from '../tensor.js';
import { type PickleGlobal, PickleObject, PickleTuple, unpickle } from './pickle.js';
import type { StateDict } from './safetensors.js';

/** torch storage classes -> how their bytes read here. BFloat16 widens to float32. */
const STORAGES: Record<string, { dtype: DType | 'bfloat16' | 'int16' | 'int8'; size: number }> = {
  FloatStorage: { dtype: 'float32', size: 4 },
  DoubleStorage: { dtype: 'float64', size: 8 },
  HalfStorage: { dtype: 'float16', size: 2 },
  BFloat16Storage: { dtype: 'bfloat16', size: 2 },
  LongStorage: { dtype: 'int64', size: 8 },
  IntStorage: { dtype: 'int32', size: 4 },
  ShortStorage: { dtype: 'int16', size: 2 },
  CharStorage: { dtype: 'int8', size: 1 },
  ByteStorage: { dtype: 'uint8', size: 1 },
  BoolStorage: { dtype: 'bool', size: 1 },
};

interface StorageRef {
  kind: 'storage';
  storage: keyof typeof STORAGES;
  key: string;
  numel: number;
}

export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

// Own names only: `in` would also accept Object.prototype members ("constructor", "toString").
const isStorageName = (name: unknown): name is keyof typeof STORAGES => typeof name === 'string' && Object.hasOwn(STORAGES, name);

const isTensorRef = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';

function weightsError(file: string, msg: string): never {
  throw new MtpdError('ERR_MTPD_WEIGHTS', `${file}: ${msg}`);
}

function toNumberList(v: unknown, file: string, what: string): number[] {
  if (!Array.isArray(v)) weightsError(file, `${what} is not a tuple`);
  return v.map((x) => {
    const n = typeof x === 'bigint' ? Number(x) : x;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) weightsError(file, `${what} holds a non-integer`);
    return n;
  });
}

function allowlist(file: string): (module: string, name: string) => PickleGlobal | undefined {
  return (module, name) => {
    const g = (call?: (args: unknown[]) => unknown): PickleGlobal => ({ module, name, ...(call ? { call } : {}) });
    const key = `${module}.${name}`;
    if (key === 'collections.OrderedDict') return g(() => new Map());
    if (key === 'builtins.dict' || key === '__builtin__.dict') return g(() => new Map());
    if (key === 'torch._utils._rebuild_tensor_v2' || key === 'torch._utils._rebuild_tensor') {
      return g((args): TensorRef => {
        const [storage, offset, size, stride] = args;
        const s = storage as StorageRef;
        if (!s || s.kind !== 'storage') weightsError(file, 'tensor without a storage');
        return {
          kind: 'tensor',
          storage: s,
          offset: typeof offset === 'number' || typeof offset === 'bigint' ? Number(offset) : Number.NaN,
          size: toNumberList(size, file, 'tensor size'),
          stride: toNumberList(stride, file, 'tensor stride'),
        };
      });
    }
    if (key === 'torch._utils._rebuild_parameter' || key === 'torch._utils._rebuild_parameter_with_state') {
      return g((args) => args[0]);
    }
    if (key === 'torch._tensor._rebuild_from_type_v2') {
      return g((args) => {
        const [fn, , fnArgs] = args;
        const f = fn as PickleGlobal;
        if (!f?.call || !Array.isArray(fnArgs)) weightsError(file, 'bad _rebuild_from_type_v2 call');
        return f.call(fnArgs);
      });
    }
    if (key === 'torch.nn.parameter.Parameter' || key === 'torch.Tensor') return g();
    if (module === 'torch' && isStorageName(name)) return g();
    if (key === 'torch.Size') return g((args) => (Array.isArray(args[0]) ? [...args[0]] : []));
    if (key === '_codecs.encode') {
      // Python 3 bytes pickled at protocol 2: _codecs.encode(text, 'latin1').
      return g((args) => new Uint8Array(Buffer.from(String(args[0]), 'latin1')));
    }
    return undefined;
  };
}

// ---- zip access (yauzl) ----

interface ZipArchive {
  entries: Map<string, yauzl.Entry>;
  read(name: string): Promise<Buffer>;
  close(): void;
}

function openZip(path: string): Promise<ZipArchive> {
  return new Promise((resolveZip, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, strictFileNames: false }, (err, zip) => {
      if (err || !zip) {
        reject(err ?? new Error('cannot open'));
        return;
      }
      const entries = new Map<string, yauzl.Entry>();
      zip.on('entry', (e: yauzl.Entry) => {
        entries.set(e.fileName, e);
        zip.readEntry();
      });
      zip.on('error', reject);
      zip.on('end', () =>
        resolveZip({
          entries,
          read: (name) =>
            new Promise<Buffer>((res, rej) => {
              const e = entries.get(name);
              if (!e) {
                rej(new Error(`entry ${name} missing`));
                return;
              }
              zip.openReadStream(e, (err2, stream) => {
                if (err2 || !stream) {
                  rej(err2 ?? new Error('cannot read'));
                  return;
                }
                const chunks: Buffer[] = [];
                stream.on('data', (c: Buffer) => chunks.push(c));
                stream.on('error', rej);
                stream.on('end', () => res(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
              });
            }),
          close: () => zip.close(),
        }),
      );
      zip.readEntry();
    });
  });
}

/**
 * The pickle holds only names and shapes (the tensor bytes are separate entries): a few MB for
 * the largest models. Every pickle byte can push a value (DUP), so the cap also bounds memory.
 */
const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

/** Reads an entry; zip-level failures (bad CRC, bad deflate data) become ERR_MTPD_WEIGHTS. */
async function readEntry(zip: ZipArchive, name: string, file: string): Promise<Buffer> {
  try {
    return await zip.read(name);
  } catch (err) {
    weightsError(file, `cannot read ${name} from the archive (${(err as Error).message})`);
  }
}

// ---- materializing tensors ----

function swapBytes(b: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  for (let i = 0; i < b.byteLength; i += size) for (let j = 0; j < size; j++) out[i + j] = b[i + size - 1 - j] as number;
  return out;
}

/** Largest copy of an overlapping (expanded) view materialized from a .pth (bytes). */
const MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

function materialize(ref: TensorRef, storageBytes: Uint8Array, file: string, name: string): Tensor {
  const info = STORAGES[ref.storage.storage];
  if (!info) weightsError(file, `tensor "${name}" has unknown storage ${ref.storage.storage}`);
  const size = info.size;
  if (ref.size.length !== ref.stride.length) weightsError(file, `tensor "${name}": size and stride differ in length`);
  // PyTorch never writes negative or fractional offsets, sizes or strides; reading them anyway
  // would return other elements than the file meant (a negative stride reads backwards).
  if (!Number.isSafeInteger(ref.offset) || ref.offset < 0) weightsError(file, `tensor "${name}": storage offset ${ref.offset} is not a non-negative integer`);
  if (ref.size.some((d) => d < 0)) weightsError(file, `tensor "${name}": negative size [${ref.size.join(', ')}]`);
  if (ref.stride.some((d) => d < 0)) weightsError(file, `tensor "${name}": negative stride [${ref.stride.join(', ')}]`);
  const n = numel(ref.size);
  // Bounds: the furthest element must lie inside the storage.
  let last = ref.offset;
  for (let d = 0; d < ref.size.length; d++) last += ((ref.size[d] as number) - 1) * (ref.stride[d] as number);
  if (n > 0 && last >= storageBytes.byteLength / size) {
    weightsError(file, `tensor "${name}" reaches past its storage (truncated or corrupt file)`);
  }
  // A view with more elements than its storage overlaps itself (stride 0: torch's expand). It is
  // materialized here, so a file of a few hundred bytes could ask for gigabytes (and a gather of
  // billions of elements); such views are allowed up to MAX_EXPANDED_BYTES.
  const storageElements = Math.floor(storageBytes.byteLength / size);
  if (n > storageElements && n * size > MAX_EXPANDED_BYTES) {
    weightsError(
      file,
      `tensor "${name}" [${ref.size.join(', ')}] with stride [${ref.stride.join(', ')}] views ${storageElements} stored elements as ${n} (${n * size} bytes, more than ${MAX_EXPANDED_BYTES} for an overlapping view); not a state dict of plain tensors`,
    );
  }
  // Gather into contiguous row-major order.
  const out = new Uint8Array(n * size);
  let contiguous = true;
  let expect = 1;
  for (let d = ref.size.length - 1; d >= 0; d--) {
    if ((ref.size[d] as number) !== 1 && ref.stride[d] !== expect) contiguous = false;
    expect *= ref.size[d] as number;
  }
  if (contiguous) {
    out.set(storageBytes.subarray(ref.offset * size, (ref.offset + n) * size));
  } else {
    const idx = new Array<number>(ref.size.length).fill(0);
    for (let i = 0; i < n; i++) {
      let src = ref.offset;
      for (let d = 0; d < idx.length; d++) src += (idx[d] as number) * (ref.stride[d] as number);
      out.set(storageBytes.subarray(src * size, src * size + size), i * size);
      for (let d = idx.length - 1; d >= 0; d--) {
        idx[d] = (idx[d] as number) + 1;
        if ((idx[d] as number) < (ref.size[d] as number)) break;
        idx[d] = 0;
      }
    }
  }
  const shape = [...ref.size];
  switch (info.dtype) {
    case 'bfloat16': {
      const f = new Float32Array(n);
      const u = new Uint32Array(f.buffer);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return { dtype: 'float32', shape, data: f };
    }
    case 'int16':
    case 'int8': {
      const dv = new DataView(out.buffer);
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = info.dtype === 'int8' ? dv.getInt8(i) : dv.getInt16(2 * i, true);
      return { dtype: 'int32', shape, data: a };
    }
    default:
      if (BYTES_PER_ELEMENT[info.dtype] !== size) weightsError(file, 'internal dtype size mismatch');
      return fromBytes(info.dtype, shape, out);
  }
}

// ---- public API ----

export interface PthFile {
  /** The state dict found in the file. */
  tensors: StateDict;
  /** Where it was found: null for a bare state dict, else the top-level key (e.g. "model"). */
  key: string | null;
  /** Entries of the state dict that are not tensors (skipped). */
  skipped: string[];
  /** The top-level dict when the state dict is nested in one (e.g. mmdetection's {meta, state_dict}), else null. */
  top: Map<unknown, unknown> | null;
}

const NESTED_KEYS = ['state_dict', 'model', 'model_state_dict', 'module', 'net', 'network', 'weights', 'params', 'student'];

function isStateDict(v: unknown): v is Map<unknown, unknown> {
  if (!(v instanceof Map) || v.size === 0) return v instanceof Map;
  let tensors = 0;
  for (const [k, x] of v) {
    if (typeof k !== 'string') return false;
    if (isTensorRef(x)) tensors++;
  }
  return tensors > 0;
}

/** Reads the pickled object graph of a torch.save zip (tensors left as TensorRefs). */
async function readPickle(path: string): Promise<{ root: unknown; zip: ZipArchive; prefix: string; bigEndian: boolean }> {
  let zip: ZipArchive;
  try {
    zip = await openZip(path);
  } catch (err) {
    weightsError(path, `not a readable zip archive (${(err as Error).message}); mtpd reads .pth files written by torch.save (PyTorch >= 1.6)`);
  }
  try {
    const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pkl) {
      const ts = [...zip.entries.keys()].some((n) => /\/(constants\.pkl|code\/)/.test(n));
      weightsError(path, ts ? 'is a TorchScript archive (torch.jit.save), not a state dict' : 'has no data.pkl: not a torch.save archive');
    }
    const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    const bo = zip.entries.has(`${prefix}byteorder`) ? (await readEntry(zip, `${prefix}byteorder`, path)).toString('utf8').trim() : 'little';
    const pklSize = zip.entries.get(pkl)?.uncompressedSize ?? 0;
    if (pklSize > MAX_PICKLE_BYTES) {
      weightsError(path, `data.pkl is ${pklSize} bytes, more than a state dict's pickle needs (at most ${MAX_PICKLE_BYTES}); not a torch.save archive or a zip bomb`);
    }
    const data = await readEntry(zip, pkl, path);
    const root = unpickle(data, {
      file: path,
      findGlobal: allowlist(path),
      persistentLoad: (pid) => {
        if (!Array.isArray(pid) || pid[0] !== 'storage') weightsError(path, 'unknown persistent id');
        const st = pid[1] as PickleGlobal;
        if (!st || !isStorageName(st.name)) weightsError(path, `unknown storage type ${String(st?.name)}`);
        const ref: StorageRef = { kind: 'storage', storage: st.name, key: String(pid[2]), numel: Number(pid[4]) };
        return ref;
      },
    });
    return { root, zip, prefix, bigEndian: bo === 'big' };
  } catch (err) {
    zip.close();
    throw err;
  }
}

/** Loads the state dict in a torch.save file. `key` picks a nested entry ("model", "state_dict", ...). */
export async function loadPth(path: string, options: { key?: string } = {}): Promise<PthFile> {
  const { root, zip, prefix, bigEndian } = await readPickle(path);
  try {
    let dict: Map<unknown, unknown> | undefined;
    let key: string | null = null;
    const top = root instanceof PickleObject && root.state instanceof Map ? root.state : root;
    if (options.key !== undefined) {
      if (!(top instanceof Map) || !top.has(options.key)) weightsError(path, `has no top-level key "${options.key}"`);
      const v = top.get(options.key);
      if (!isStateDict(v)) weightsError(path, `entry "${options.key}" is not a state dict`);
      dict = v;
      key = options.key;
    } else if (isStateDict(top)) {
      dict = top;
    } else if (top instanceof Map) {
      for (const k of NESTED_KEYS) {
        const v = top.get(k);
        if (isStateDict(v)) {
          dict = v;
          key = k;
          break;
        }
      }
      if (!dict) {
        const keys = [...top.keys()].map(String).slice(0, 20).join(', ');
        weightsError(path, `holds no state dict: top-level keys are ${keys || '(none)'}; pick one with key`);
      }
    } else {
      weightsError(path, 'holds no state dict (the pickled object is not a dict)');
    }
    const storages = new Map<string, Uint8Array>();
    const tensors: StateDict = new Map();
    const skipped: string[] = [];
    for (const [k, v] of dict) {
      const name = String(k);
      if (!isTensorRef(v)) {
        skipped.push(name);
        continue;
      }
      let bytes = storages.get(v.storage.key);
      if (!bytes) {
        const entry = `${prefix}data/${v.storage.key}`;
        const e = zip.entries.get(entry);
        if (!e) weightsError(path, `storage ${v.storage.key} of "${name}" is missing from the archive`);
        const size = STORAGES[v.storage.storage]?.size ?? 1;
        // torch.save writes exactly numel * element size bytes. Checked before reading, so a
        // small compressed entry cannot expand into gigabytes (zip bomb) and truncation is named.
        const want = v.storage.numel * size;
        if (!Number.isSafeInteger(v.storage.numel) || v.storage.numel < 0 || e.uncompressedSize !== want) {
          weightsError(
            path,
            `storage ${v.storage.key} of "${name}" holds ${e.uncompressedSize} bytes, but the file declares ${v.storage.numel} ${v.storage.storage} elements (${want} bytes); truncated or corrupt file`,
          );
        }
        bytes = await readEntry(zip, entry, path);
        if (bigEndian && size > 1) bytes = swapBytes(bytes, size);
        storages.set(v.storage.key, bytes);
      }
      tensors.set(name, materialize(v, bytes, path, name));
    }
    return { tensors, key, skipped, top: key !== null && top instanceof Map ? top : null };
  } finally {
    zip.close();
  }
}

export { PickleTuple };
