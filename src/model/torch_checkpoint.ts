/**
 * PyTorch checkpoints written by `torch.save` (the zip format, PyTorch 1.6 and later) read
 * into a {@linkcode StateDict} of float32 tensors, without Python.
 *
 * What is read:
 * - the archive `<folder>/data.pkl` + `<folder>/data/<key>` + `<folder>/byteorder`, whatever
 *   the folder is called (torch uses the file stem, older versions `archive`); stored or
 *   deflated entries;
 * - tensors rebuilt by `torch._utils._rebuild_tensor` / `_rebuild_tensor_v2` /
 *   `_rebuild_tensor_v3`, parameters (`_rebuild_parameter`, `_rebuild_parameter_with_state`)
 *   and tensors with Python attributes (`torch._tensor._rebuild_from_type_v2`), with any
 *   storage offset and strides (views are gathered into contiguous row-major data; 0-d
 *   tensors get shape `[]`);
 * - dtypes float32, float64, float16, bfloat16, float8_e4m3fn, float8_e5m2, int64, int32,
 *   int16, int8, uint64, uint32, uint16, uint8 and bool, all converted to float32 (integers
 *   beyond 2^24 lose precision). torch 2.13 writes the classic dtypes as legacy typed
 *   storages (`torch.FloatStorage`, ...) and the newer ones (uint16, float8, ...) as
 *   `torch.storage.UntypedStorage` plus a dtype argument of `_rebuild_tensor_v3`;
 * - little-endian archives, and big-endian ones (`byteorder` = `big`) with bytes swapped.
 *
 * Which dict is the state dict: the pickled object itself when it is a dict whose values
 * are all tensors; otherwise, in a dict (a Lightning checkpoint, `{"model": ...}`), the
 * value under `state_dict`, `model_state_dict` or `model` (first found, in that order)
 * that is a dict of tensors, else the only value that is one. Several candidates and none
 * of those keys is an error, as is a dict of tensors nested deeper.
 *
 * Key prefix: anomalib's Lightning module holds the torch model as `model`, so its
 * checkpoint keys read `model.teacher.conv1.weight`. When some keys start with `model.`,
 * that prefix is removed from them (other keys, such as `image_threshold.value`, are kept
 * as they are), unless a stripped key would clash with an existing one, in which case no
 * key is changed.
 *
 * Safety: the pickle is interpreted, never executed. Only the names that rebuild tensors
 * and plain containers are resolved (the same family as `torch.load(weights_only=True)`):
 * `collections.OrderedDict`, `builtins.set`, `builtins.bytearray`, `_codecs.encode`,
 * `torch.Size`, `torch.device`, tensor and parameter types, storage types, dtypes and the
 * rebuild functions above. Any other global (a pickled `nn.Module`, an optimizer class,
 * `os.system`) makes the file fail with a message naming it. Tensor data is read only
 * for the tensors of the selected state dict.
 *
 * Not read: the legacy format (`_use_new_zipfile_serialization=False`, PyTorch < 1.6),
 * TorchScript archives (`torch.jit.save`), sparse, quantized, complex and nested tensors.
 * Zip CRCs are not verified (torch can write archives without them).
 *
 * @module
 */
import { unzipSync } from "fflate";
import { Parser } from "pickleparser";
import { ModelFormatError } from "../core/errors.ts";
import { halfToFloat } from "../core/npy.ts";
import { formatShape, sizeOf, type Tensor } from "../core/tensor.ts";
import type { StateDict } from "./state_dict.ts";

/**
 * Reads a PyTorch zip checkpoint file into a state dict of float32 tensors.
 *
 * @example
 * ```ts
 * const teacher = await readTorchCheckpoint("pretrained_teacher_small.pth");
 * teacher.get("conv1.weight")?.shape; // [128, 3, 4, 4]
 * ```
 * @throws {ModelFormatError} when the file cannot be read, or for any reason
 * {@linkcode parseTorchCheckpoint} gives.
 */
export async function readTorchCheckpoint(path: string): Promise<StateDict> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "file not found" : errorText(e);
    throw new ModelFormatError(path, reason, { cause: e });
  }
  return parseTorchCheckpoint(bytes, path);
}

/**
 * Parses the bytes of a PyTorch zip checkpoint into a state dict of float32 tensors in
 * row-major order (see the module documentation for what is read and which dict is
 * taken). Keys keep the pickle's order.
 *
 * @param path names the file in error messages.
 * @throws {ModelFormatError} naming `path` when the bytes are empty, not a zip archive,
 * the legacy (pre-1.6) format, a TorchScript archive, a corrupt or truncated archive or
 * pickle, refer to a Python global outside the allowed set, miss a storage or hold too
 * few bytes for it, hold no (or an ambiguous) dict of tensors, or a tensor of a dtype
 * that cannot be converted.
 */
export function parseTorchCheckpoint(bytes: Uint8Array, path: string): StateDict {
  const archive = openArchive(bytes, path);
  let root: unknown;
  try {
    root = new Parser({
      nameResolver: {
        resolve: (module: string, name: string) => resolveGlobal(module, name, path),
      },
      persistentResolver: { resolve: (pid: unknown) => resolveStorage(pid, path) },
      unpicklingTypeOfDictionary: "Map",
      unpicklingTypeOfSet: "array",
    }).parse(archive.pickle);
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    const reason = `corrupt pickle ${archive.prefix}/data.pkl (${errorText(e)})`;
    throw new ModelFormatError(path, reason, { cause: e });
  }
  const refs = stripModelPrefix(findStateDict(root, path));
  const out: StateDict = new Map();
  for (const [key, ref] of refs) {
    try {
      out.set(key, materialize(ref, archive, key, path));
    } catch (e) {
      if (e instanceof ModelFormatError) throw e;
      throw new ModelFormatError(path, `cannot rebuild tensor "${key}" (${errorText(e)})`, {
        cause: e,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Archive

interface Archive {
  /** The archive's top folder, without a trailing slash. */
  readonly prefix: string;
  readonly pickle: Uint8Array;
  /** Storage bytes by key (`data/<key>` inside the folder). */
  readonly storages: ReadonlyMap<string, Uint8Array>;
  readonly littleEndian: boolean;
  /** Decoded storages, by `<key>/<dtype>`. */
  readonly decoded: Map<string, Float32Array>;
}

/** `torch.save(..., _use_new_zipfile_serialization=False)` starts with this pickled long. */
const LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const RESAVE_HINT = "re-save it in Python with torch.save(torch.load(old_path), new_path) " +
  "using PyTorch 1.6 or later";
const ENTRY = /^[^/]+\/(?:data\.pkl|byteorder|data\/[^/]+)$/;

function openArchive(bytes: Uint8Array, path: string): Archive {
  if (bytes.length === 0) throw new ModelFormatError(path, "the file is empty");
  if (isLegacy(bytes)) {
    throw new ModelFormatError(
      path,
      "this is PyTorch's legacy checkpoint format (saved with " +
        `_use_new_zipfile_serialization=False or PyTorch < 1.6), which is not supported; ${RESAVE_HINT}`,
    );
  }
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)) {
    const what = bytes[0] === 0x80 ? "a bare pickle" : "no zip signature";
    throw new ModelFormatError(path, `not a PyTorch zip checkpoint (${what})`);
  }
  checkDirectory(bytes, path);
  const names: string[] = [];
  const sizes = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (file) => {
        names.push(file.name);
        sizes.set(file.name, file.originalSize);
        // Deflate expands at most 1032-fold: a larger size is corrupt, not worth allocating.
        if (file.compression !== 0 && file.originalSize > 1032 * file.size + 1024) {
          throw new ModelFormatError(path, `corrupt zip entry ${file.name} (impossible size)`);
        }
        return ENTRY.test(file.name);
      },
    });
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    throw new ModelFormatError(path, `corrupt or truncated zip archive (${errorText(e)})`, {
      cause: e,
    });
  }
  const prefixes = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n)).map((n) => n.split("/")[0]!);
  if (names.some((n) => /^[^/]+\/(code\/|constants\.pkl$)/.test(n))) {
    throw new ModelFormatError(
      path,
      "this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the " +
        "weights with torch.save(model.state_dict(), path)",
    );
  }
  const prefix = prefixes[0];
  if (prefix === undefined) {
    throw new ModelFormatError(
      path,
      "not a PyTorch checkpoint: the zip holds no <folder>/data.pkl",
    );
  }
  if (prefixes.length > 1) {
    throw new ModelFormatError(path, `ambiguous zip: data.pkl in folders ${prefixes.join(", ")}`);
  }
  const storages = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(files)) {
    if (!name.startsWith(`${prefix}/`)) continue;
    if (data.length !== sizes.get(name)) {
      throw new ModelFormatError(
        path,
        `truncated zip entry ${name}: ${data.length} of ${sizes.get(name)} bytes`,
      );
    }
    const rest = name.slice(prefix.length + 1);
    if (rest.startsWith("data/")) storages.set(rest.slice(5), data);
  }
  return {
    prefix,
    pickle: files[`${prefix}/data.pkl`]!,
    storages,
    littleEndian: byteOrder(files[`${prefix}/byteorder`], prefix, path),
    decoded: new Map(),
  };
}

/**
 * Checks that the central directory's entry count fits the file, as fflate reads it,
 * so that a corrupt count cannot make it walk billions of phantom entries.
 */
function checkDirectory(bytes: Uint8Array, path: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at: number) => at >= 0 && at + 4 <= bytes.length ? view.getUint32(at, true) : -1;
  let end = bytes.length - 22;
  while (end >= 0 && bytes.length - end <= 65558 && u32(end) !== 0x06054b50) end--;
  if (end < 0 || bytes.length - end > 65558) return; // fflate reports the missing record
  let count = view.getUint16(end + 8, true);
  let offset = u32(end + 16);
  const z64 = u32(end - 12);
  if (u32(end - 20) === 0x07064b50 && u32(z64) === 0x06064b50) {
    count = u32(z64 + 32);
    offset = u32(z64 + 48);
  }
  if (offset < 0 || offset > bytes.length || count * 46 > bytes.length - offset) {
    throw new ModelFormatError(
      path,
      `corrupt or truncated zip archive (a directory of ${count} entries at byte ${offset} ` +
        `does not fit in ${bytes.length} bytes)`,
    );
  }
}

function isLegacy(bytes: Uint8Array): boolean {
  // PROTO n, LONG1 10 <magic>: the legacy format's first pickle.
  if (bytes[0] === 0x80 && bytes[2] === 0x8a && bytes[3] === 0x0a) {
    if (LEGACY_MAGIC.every((b, i) => bytes[4 + i] === b)) return true;
  }
  // The even older tar format (PyTorch < 0.4): "ustar" at offset 257.
  return new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar";
}

function byteOrder(entry: Uint8Array | undefined, prefix: string, path: string): boolean {
  if (entry === undefined) return true; // written since PyTorch 1.10; older files are little
  const text = new TextDecoder().decode(entry).trim();
  if (text === "little") return true;
  if (text === "big") return false;
  throw new ModelFormatError(path, `unknown byte order "${text}" in ${prefix}/byteorder`);
}

// ---------------------------------------------------------------------------------------
// Dtypes

/** Decodes `count` elements at the start of `bytes` (the result may be a view on them). */
type Decoder = (bytes: Uint8Array, count: number, little: boolean) => Float32Array;

/** An element type: its size in bytes and, when convertible, a decoder to float32. */
interface DType {
  readonly name: string;
  readonly size: number;
  readonly decode?: Decoder;
}

function perElement(
  read: (view: DataView, byte: number, little: boolean) => number,
  size: number,
): Decoder {
  return (bytes, count, little) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = read(view, i * size, little);
    return out;
  };
}

let halfTable: Float32Array | undefined;
/** float32 values of all 65 536 half-precision bit patterns. */
function halfValues(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Reads `count` 16-bit words, as a view when the bytes are aligned little-endian. */
function words16(bytes: Uint8Array, count: number, little: boolean): Uint16Array {
  if (little && bytes.byteOffset % 2 === 0) {
    return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, little);
  return out;
}

function decodeFloat32(bytes: Uint8Array, count: number, little: boolean): Float32Array {
  if (little && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }
  return perElement((v, p, l) => v.getFloat32(p, l), 4)(bytes, count, little);
}

function decodeHalf(bytes: Uint8Array, count: number, little: boolean): Float32Array {
  const table = halfValues();
  const src = words16(bytes, count, little);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = table[src[i]!]!;
  return out;
}

function decodeBfloat16(bytes: Uint8Array, count: number, little: boolean): Float32Array {
  const src = words16(bytes, count, little);
  const out = new Float32Array(count);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = src[i]! << 16;
  return out;
}

/** A decoder through a 256-entry table, for one-byte float formats. */
function byteTable(value: (b: number) => number): Decoder {
  const table = new Float32Array(256);
  for (let b = 0; b < 256; b++) table[b] = value(b);
  return (bytes, count) => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = table[bytes[i]!]!;
    return out;
  };
}

/** float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN. */
function float8e4m3(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 0x7;
  if (e === 0xf && m === 0x7) return NaN;
  return e === 0 ? sign * m * 2 ** -9 : sign * (1 + m / 8) * 2 ** (e - 7);
}

function int64(view: DataView, p: number, little: boolean, signed: boolean): number {
  const lo = view.getUint32(little ? p : p + 4, little);
  const hiAt = little ? p + 4 : p;
  const hi = signed ? view.getInt32(hiAt, little) : view.getUint32(hiAt, little);
  return hi * 2 ** 32 + lo;
}

const DTYPES: Readonly<Record<string, DType>> = Object.fromEntries(
  [
    { name: "float32", size: 4, decode: decodeFloat32 },
    { name: "float64", size: 8, decode: perElement((v, p, l) => v.getFloat64(p, l), 8) },
    { name: "float16", size: 2, decode: decodeHalf },
    { name: "bfloat16", size: 2, decode: decodeBfloat16 },
    { name: "float8_e4m3fn", size: 1, decode: byteTable(float8e4m3) },
    { name: "float8_e5m2", size: 1, decode: byteTable((b) => halfToFloat(b << 8)) },
    { name: "int64", size: 8, decode: perElement((v, p, l) => int64(v, p, l, true), 8) },
    { name: "uint64", size: 8, decode: perElement((v, p, l) => int64(v, p, l, false), 8) },
    { name: "int32", size: 4, decode: perElement((v, p, l) => v.getInt32(p, l), 4) },
    { name: "uint32", size: 4, decode: perElement((v, p, l) => v.getUint32(p, l), 4) },
    { name: "int16", size: 2, decode: perElement((v, p, l) => v.getInt16(p, l), 2) },
    { name: "uint16", size: 2, decode: perElement((v, p, l) => v.getUint16(p, l), 2) },
    { name: "int8", size: 1, decode: perElement((v, p) => v.getInt8(p), 1) },
    {
      name: "uint8",
      size: 1,
      decode: (b: Uint8Array, n: number) => Float32Array.from(b.subarray(0, n)),
    },
    {
      name: "bool",
      size: 1,
      decode: (b: Uint8Array, n: number) => Float32Array.from(b.subarray(0, n), (x) => x ? 1 : 0),
    },
    // Known, but not convertible to float32 here.
    { name: "complex32", size: 4 },
    { name: "complex64", size: 8 },
    { name: "complex128", size: 16 },
    { name: "float8_e4m3fnuz", size: 1 },
    { name: "float8_e5m2fnuz", size: 1 },
    { name: "float8_e8m0fnu", size: 1 },
    { name: "qint8", size: 1 },
    { name: "quint8", size: 1 },
    { name: "qint32", size: 4 },
    { name: "quint4x2", size: 1 },
    { name: "quint2x4", size: 1 },
  ].map((d) => [d.name, d]),
);

/** Legacy typed-storage class names (`torch.FloatStorage`) and their dtypes. */
const STORAGE_DTYPES: Readonly<Record<string, string>> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
  ComplexFloatStorage: "complex64",
  ComplexDoubleStorage: "complex128",
  QInt8Storage: "qint8",
  QUInt8Storage: "quint8",
  QInt32Storage: "qint32",
  QUInt4x2Storage: "quint4x2",
  QUInt2x4Storage: "quint2x4",
};

/** dtype aliases that `torch.<name>` may be pickled as. */
const DTYPE_ALIASES: Readonly<Record<string, string>> = {
  float: "float32",
  double: "float64",
  half: "float16",
  long: "int64",
  int: "int32",
  short: "int16",
  cfloat: "complex64",
  cdouble: "complex128",
  chalf: "complex32",
};

// ---------------------------------------------------------------------------------------
// Unpickling: what the allowed globals rebuild

/** A storage named by a persistent id: `data/<key>` holding `numel` elements of `dtype`. */
class StorageRef {
  #brand = true;
  readonly key: string;
  readonly dtype: DType;
  readonly numel: number;
  constructor(key: string, dtype: DType, numel: number) {
    this.key = key;
    this.dtype = dtype;
    this.numel = numel;
    Object.freeze(this);
  }
  static is(x: unknown): x is StorageRef {
    return typeof x === "object" && x !== null && #brand in x;
  }
}

/** A tensor as a view on a storage; its data is read only if the tensor is returned. */
class TensorRef {
  #brand = true;
  readonly storage: StorageRef;
  readonly dtype: DType;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
  constructor(
    storage: StorageRef,
    dtype: DType,
    view: { offset: number; shape: number[]; stride: number[] },
  ) {
    this.storage = storage;
    this.dtype = dtype;
    this.offset = view.offset;
    this.shape = Object.freeze(view.shape);
    this.stride = Object.freeze(view.stride);
    Object.freeze(this);
  }
  static is(x: unknown): x is TensorRef {
    return typeof x === "object" && x !== null && #brand in x;
  }
}

type PyFunction = (...args: unknown[]) => unknown;

/** What a resolved global stands for when it is a value rather than a function to call. */
type Marker =
  | { readonly kind: "storage"; readonly dtype: DType }
  | { readonly kind: "dtype"; readonly dtype: DType }
  | { readonly kind: "type"; readonly name: string };

const markers = new WeakMap<PyFunction, Marker>();
const rebuilders = new WeakSet<PyFunction>();

function markerFor(x: unknown): Marker | undefined {
  return typeof x === "function" ? markers.get(x as PyFunction) : undefined;
}

function marker(qualified: string, m: Marker, path: string): PyFunction {
  const f: PyFunction = () => {
    throw new ModelFormatError(path, `unsupported call of ${qualified} in the pickle`);
  };
  markers.set(f, m);
  return f;
}

function resolveGlobal(module: string, name: string, path: string): PyFunction {
  const qualified = `${module}.${name}`;
  const fail = (why: string): never => {
    throw new ModelFormatError(path, `cannot read Python global ${qualified}: ${why}`);
  };
  const builtin = module === "builtins" || module === "__builtin__";
  if (module === "collections" && name === "OrderedDict") return orderedDict;
  if (builtin && (name === "set" || name === "frozenset")) return pySet;
  if (builtin && name === "bytearray") return pyBytearray;
  if (module === "_codecs" && name === "encode") return codecsEncode;
  if (module === "torch._utils") {
    const f = REBUILD[name];
    if (f !== undefined) return rebuilder(f, path);
  }
  if (module === "torch._tensor" && name === "_rebuild_from_type_v2") {
    return rebuilder(rebuildFromType, path);
  }
  if (module === "torch") {
    if (name === "Size") return (dims: unknown) => dims;
    if (name === "device") {
      return (type: unknown, index?: unknown) =>
        index === undefined || index === null ? String(type) : `${type}:${index}`;
    }
    if (name === "Tensor") return marker(qualified, { kind: "type", name: "Tensor" }, path);
    const storage = STORAGE_DTYPES[name];
    if (storage !== undefined) {
      return marker(qualified, { kind: "storage", dtype: DTYPES[storage]! }, path);
    }
    const dtype = DTYPES[DTYPE_ALIASES[name] ?? name];
    if (dtype !== undefined) return marker(qualified, { kind: "dtype", dtype }, path);
  }
  if (qualified === "torch.storage.UntypedStorage") {
    return marker(qualified, { kind: "storage", dtype: DTYPES["uint8"]! }, path);
  }
  if (qualified === "torch.nn.parameter.Parameter") {
    return marker(qualified, { kind: "type", name: "Parameter" }, path);
  }
  if (module.startsWith("__torch__")) return fail("this is TorchScript, not a torch.save file");
  return fail(
    "only tensors and plain containers are read, not other Python objects (such as a " +
      "pickled nn.Module); save the weights alone with torch.save(model.state_dict(), path)",
  );
}

function orderedDict(items?: unknown): Map<unknown, unknown> {
  const map = new Map<unknown, unknown>();
  if (Array.isArray(items)) {
    for (const pair of items) if (Array.isArray(pair)) map.set(pair[0], pair[1]);
  }
  return map;
}

function pySet(items?: unknown): unknown[] {
  return Array.isArray(items) ? [...items] : [];
}

function pyBytearray(source?: unknown): Uint8Array {
  if (source instanceof Uint8Array) return source.slice();
  if (typeof source === "string") return latin1(source);
  return new Uint8Array(0);
}

/** `_codecs.encode(text, "latin1")`: how protocol 2 pickles Python 3 bytes. */
function codecsEncode(text: unknown): Uint8Array {
  return typeof text === "string" ? latin1(text) : new Uint8Array(0);
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
}

function rebuilder(f: (path: string, args: unknown[]) => unknown, path: string): PyFunction {
  const g: PyFunction = (...args) => f(path, args);
  rebuilders.add(g);
  return g;
}

const REBUILD: Readonly<Record<string, (path: string, args: unknown[]) => unknown>> = {
  _rebuild_tensor: (path, [storage, offset, size, stride]) =>
    rebuildTensor(path, storage, { offset, size, stride }),
  _rebuild_tensor_v2: (path, [storage, offset, size, stride]) =>
    rebuildTensor(path, storage, { offset, size, stride }),
  _rebuild_tensor_v3: (path, [storage, offset, size, stride, , , dtype]) => {
    const m = markerFor(dtype);
    if (m?.kind !== "dtype") throw new ModelFormatError(path, "tensor with an unknown dtype");
    return rebuildTensor(path, storage, { offset, size, stride }, m.dtype);
  },
  _rebuild_parameter: (path, [data]) => expectTensor(data, path),
  _rebuild_parameter_with_state: (path, [data]) => expectTensor(data, path),
};

/** `_rebuild_from_type_v2(func, type, args, state)`: a tensor with Python attributes. */
function rebuildFromType(path: string, [func, type, args]: unknown[]): unknown {
  const m = markerFor(type);
  if (m?.kind !== "type") throw new ModelFormatError(path, "tensor of an unsupported subclass");
  if (typeof func !== "function" || !rebuilders.has(func as PyFunction) || !Array.isArray(args)) {
    throw new ModelFormatError(path, "malformed _rebuild_from_type_v2 arguments");
  }
  return expectTensor((func as PyFunction)(...args), path);
}

function expectTensor(x: unknown, path: string): TensorRef {
  if (!TensorRef.is(x)) throw new ModelFormatError(path, "a parameter holds no tensor");
  return x;
}

function rebuildTensor(
  path: string,
  storage: unknown,
  view: { offset: unknown; size: unknown; stride: unknown },
  dtype?: DType,
): TensorRef {
  if (!StorageRef.is(storage)) {
    throw new ModelFormatError(path, "a tensor refers to no storage");
  }
  const shape = intList(view.size, "size", path);
  const stride = intList(view.stride, "stride", path);
  const offset = toInt(view.offset, "storage offset", path);
  if (stride.length !== shape.length) {
    throw new ModelFormatError(
      path,
      `tensor of size ${formatShape(shape)} has stride ${formatShape(stride)}`,
    );
  }
  return new TensorRef(storage, dtype ?? storage.dtype, { offset, shape, stride });
}

function toInt(x: unknown, what: string, path: string): number {
  const n = typeof x === "bigint" ? Number(x) : x;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new ModelFormatError(path, `invalid tensor ${what} ${String(x)}`);
  }
  return n;
}

function intList(x: unknown, what: string, path: string): number[] {
  if (!Array.isArray(x)) throw new ModelFormatError(path, `invalid tensor ${what}`);
  return x.map((v) => toInt(v, what, path));
}

/** A persistent id `('storage', storage_type, key, location, numel)`. */
function resolveStorage(pid: unknown, path: string): StorageRef {
  const fields = Array.isArray(pid) ? pid.map(asText) : [];
  const [tag, type, key, , numel] = fields;
  const m = markerFor(type);
  if (fields.length !== 5 || tag !== "storage" || typeof key !== "string" || m === undefined) {
    throw new ModelFormatError(path, "unsupported persistent id in the pickle");
  }
  if (m.kind !== "storage") throw new ModelFormatError(path, "unsupported storage type");
  return new StorageRef(key, m.dtype, toInt(numel, "storage size", path));
}

/** Python 2 pickles may give ids as bytes; decode them like torch's `_maybe_decode_ascii`. */
function asText(x: unknown): unknown {
  return x instanceof Uint8Array ? new TextDecoder().decode(x) : x;
}

// ---------------------------------------------------------------------------------------
// Choosing the state dict

const PREFERRED_KEYS = ["state_dict", "model_state_dict", "model"];

function isTensorDict(x: unknown): x is Map<string, TensorRef> {
  if (!(x instanceof Map)) return false;
  for (const [k, v] of x) if (typeof k !== "string" || !TensorRef.is(v)) return false;
  return true;
}

function findStateDict(root: unknown, path: string): Map<string, TensorRef> {
  if (isTensorDict(root)) return root;
  if (!(root instanceof Map)) {
    throw new ModelFormatError(
      path,
      `the checkpoint holds ${describe(root)}, not a dict of tensors`,
    );
  }
  for (const key of PREFERRED_KEYS) {
    const value = root.get(key);
    if (isTensorDict(value) && value.size > 0) return value;
  }
  const found = [...root].filter(([, v]) => isTensorDict(v) && v.size > 0);
  const only = found[0];
  if (found.length === 1 && only !== undefined) return only[1] as Map<string, TensorRef>;
  if (found.length === 0) {
    const keys = [...root.keys()].slice(0, 10).map((k) => JSON.stringify(String(k)));
    const more = root.size > 10 ? ", ..." : "";
    throw new ModelFormatError(
      path,
      `no dict of tensors found (top-level keys: ${keys.join(", ")}${more})`,
    );
  }
  throw new ModelFormatError(
    path,
    `ambiguous checkpoint: dicts of tensors under ${
      found.map(([k]) => JSON.stringify(String(k))).join(", ")
    }; save the one to use alone with torch.save(state_dict, path)`,
  );
}

function describe(x: unknown): string {
  if (TensorRef.is(x)) return "a single tensor";
  if (Array.isArray(x)) return "a list";
  if (x === null) return "None";
  return `a ${typeof x}`;
}

function stripModelPrefix(dict: Map<string, TensorRef>): Map<string, TensorRef> {
  const prefix = "model.";
  if (![...dict.keys()].some((k) => k.startsWith(prefix))) return dict;
  const out = new Map<string, TensorRef>();
  for (const [k, v] of dict) {
    const key = k.startsWith(prefix) ? k.slice(prefix.length) : k;
    if (out.has(key) || (key !== k && dict.has(key))) return dict; // would clash: keep all
    out.set(key, v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Tensor data

/** 4 GiB of float32: more than any EfficientAD tensor, less than a corrupt size can ask. */
const MAX_ELEMENTS = 2 ** 30;

function materialize(ref: TensorRef, archive: Archive, key: string, path: string): Tensor {
  const values = storageValues(ref, archive, key, path);
  const { shape, stride, offset } = ref;
  const n = sizeOf(shape);
  if (n > MAX_ELEMENTS) {
    throw new ModelFormatError(path, `tensor "${key}" of size ${formatShape(shape)} is too large`);
  }
  if (n > 0) {
    let last = offset;
    shape.forEach((d, i) => last += (d - 1) * stride[i]!);
    if (last >= values.length) {
      throw new ModelFormatError(
        path,
        `tensor "${key}" (size ${formatShape(shape)}, offset ${offset}, stride ${
          formatShape(stride)
        }) reads element ${last} of storage data/${ref.storage.key}, which holds ${values.length}`,
      );
    }
  }
  return { shape: [...shape], data: gather(values, offset, shape, stride) };
}

/** The whole storage decoded to float32 as the tensor's dtype, decoded once per dtype. */
function storageValues(ref: TensorRef, archive: Archive, key: string, path: string): Float32Array {
  const { storage, dtype } = ref;
  const cacheKey = `${storage.key}/${dtype.name}`;
  const cached = archive.decoded.get(cacheKey);
  if (cached !== undefined) return cached;
  const bytes = archive.storages.get(storage.key);
  const entry = `${archive.prefix}/data/${storage.key}`;
  if (bytes === undefined) {
    throw new ModelFormatError(path, `missing storage ${entry} for tensor "${key}"`);
  }
  const nbytes = storage.numel * storage.dtype.size;
  if (bytes.length < nbytes) {
    throw new ModelFormatError(
      path,
      `storage ${entry} holds ${bytes.length} bytes, expected ${nbytes} (truncated)`,
    );
  }
  if (dtype.decode === undefined) {
    throw new ModelFormatError(
      path,
      `tensor "${key}" has dtype ${dtype.name}, which cannot be converted to float32`,
    );
  }
  const count = Math.floor(nbytes / dtype.size);
  const values = dtype.decode(bytes.subarray(0, count * dtype.size), count, archive.littleEndian);
  archive.decoded.set(cacheKey, values);
  return values;
}

/** Copies a strided view into a new contiguous row-major array. */
function gather(
  src: Float32Array,
  offset: number,
  shape: readonly number[],
  stride: readonly number[],
): Float32Array {
  const n = sizeOf(shape);
  if (n === 0) return new Float32Array(0);
  if (isContiguous(shape, stride)) return src.slice(offset, offset + n);
  const out = new Float32Array(n);
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const step = stride[rank - 1]!;
  const index = new Array<number>(rank - 1).fill(0);
  let base = offset;
  let o = 0;
  for (let row = n / inner; row > 0; row--) {
    for (let j = 0, p = base; j < inner; j++, p += step) out[o++] = src[p]!;
    for (let d = rank - 2; d >= 0; d--) {
      base += stride[d]!;
      if (++index[d]! < shape[d]!) break;
      base -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
