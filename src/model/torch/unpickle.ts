/**
 * What the allowed Python globals of a checkpoint's pickle rebuild: storage and tensor
 * references, plain containers, and nothing else (any other global is refused with its
 * name). Internal to `../torch_checkpoint.ts`.
 *
 * @module
 */
import { ModelFormatError } from "../../core/errors.ts";
import { formatShape } from "../../core/tensor.ts";
import { type DType, DTYPE_ALIASES, DTYPES, STORAGE_DTYPES } from "./dtypes.ts";

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
export class TensorRef {
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

export function resolveGlobal(module: string, name: string, path: string): PyFunction {
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
export function resolveStorage(pid: unknown, path: string): StorageRef {
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
