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
import { Parser } from "pickleparser";
import { errorMessage, ModelFormatError } from "../core/errors.ts";
import { formatShape, sizeOf, type Tensor } from "../core/tensor.ts";
import type { StateDict } from "./state_dict.ts";
import { type Archive, openArchive } from "./torch/archive.ts";
import { resolveGlobal, resolveStorage, TensorRef } from "./torch/unpickle.ts";

/**
 * Reads a PyTorch zip checkpoint file into a state dict of float32 tensors.
 *
 * @example
 * ```ts
 * import { readTorchCheckpoint } from "./torch_checkpoint.ts";
 *
 * async function teacherShape(path = "pretrained_teacher_small.pth") {
 *   const teacher = await readTorchCheckpoint(path);
 *   return teacher.get("conv1.weight")?.shape; // [128, 3, 4, 4]
 * }
 * ```
 * @throws {ModelFormatError} when the file cannot be read, or for any reason
 * {@linkcode parseTorchCheckpoint} gives.
 */
export async function readTorchCheckpoint(path: string): Promise<StateDict> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "file not found" : errorMessage(e);
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
    const reason = `corrupt pickle ${archive.prefix}/data.pkl (${errorMessage(e)})`;
    throw new ModelFormatError(path, reason, { cause: e });
  }
  const refs = stripModelPrefix(findStateDict(root, path));
  const out: StateDict = new Map();
  for (const [key, ref] of refs) {
    try {
      out.set(key, materialize(ref, archive, key, path));
    } catch (e) {
      if (e instanceof ModelFormatError) throw e;
      throw new ModelFormatError(path, `cannot rebuild tensor "${key}" (${errorMessage(e)})`, {
        cause: e,
      });
    }
  }
  return out;
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
