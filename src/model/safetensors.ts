/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length `N`, `N`
 * bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?:
 * {string: string}}`, then the tensors' bytes, little-endian, row-major, with offsets
 * relative to the end of the header.
 *
 * Reads F32, F16, BF16 and F64 tensors into float32; writes F32. Reading checks what the
 * reference implementation checks: the header fits the file, every tensor's byte length
 * matches its shape, and the tensors tile the data section exactly (no gaps, overlaps or
 * trailing bytes).
 *
 * @module
 */
import { errorMessage, ModelFormatError } from "../core/errors.ts";
import { halfToFloat } from "../core/npy.ts";
import { sizeOf, type Tensor } from "../core/tensor.ts";

/** The element types this module reads. */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "F64";

/** The contents of a safetensors file. */
export interface Safetensors {
  /** Tensors in header order, converted to float32. */
  readonly tensors: Map<string, Tensor>;
  /** The optional `__metadata__` string map; empty when absent. */
  readonly metadata: Record<string, string>;
}

/** Options of {@linkcode encodeSafetensors} and {@linkcode writeSafetensors}. */
export interface EncodeSafetensorsOptions {
  /** Written as `__metadata__`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Aborts the file read. */
  readonly signal?: AbortSignal;
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
/** The reference implementation's limit on the header length. */
const MAX_HEADER = 100_000_000;
const METADATA_KEY = "__metadata__";

let halfTable: Float32Array | undefined;
/** float16 bit pattern -> value, built on first use (256 KiB). */
function halfLookup(): Float32Array {
  halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => halfToFloat(h));
  return halfTable;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

interface Entry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function parseEntry(name: string, value: unknown, path: string): Entry {
  const fail = (problem: string) =>
    new ModelFormatError(path, `safetensors tensor "${name}" ${problem}`);
  if (!isRecord(value)) throw fail("is not an object");
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") throw fail("has no dtype");
  if (!Object.hasOwn(ITEM_SIZE, dtype)) {
    throw fail(`has dtype ${dtype}, which is not supported (expected F32, F16, BF16 or F64)`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fail(`has shape ${JSON.stringify(shape)}, expected an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw fail(
      `has data_offsets ${JSON.stringify(offsets)}, expected [begin, end] as non-negative integers`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw fail(`has data_offsets [${begin}, ${end}] with begin after end`);
  const d = dtype as SafetensorsDtype;
  const bytes = sizeOf(shape) * ITEM_SIZE[d];
  if (end - begin !== bytes) {
    throw fail(
      `of dtype ${d} and shape [${shape.join(", ")}] needs ${bytes} bytes, ` +
        `data_offsets [${begin}, ${end}] give ${end - begin}`,
    );
  }
  return { name, dtype: d, shape, begin, end };
}

function decodeTensor(entry: Entry, data: Uint8Array): Tensor {
  const raw = data.subarray(entry.begin, entry.end);
  const n = sizeOf(entry.shape);
  let values: Float32Array;
  switch (entry.dtype) {
    case "F32":
      values = new Float32Array(raw.slice().buffer); // little-endian hosts only, as npy.ts
      break;
    case "F16": {
      const bits = new Uint16Array(raw.slice().buffer);
      const table = halfLookup();
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = table[bits[i]!]!;
      break;
    }
    case "BF16": {
      const bits = new Uint16Array(raw.slice().buffer);
      const words = new Uint32Array(n);
      for (let i = 0; i < n; i++) words[i] = bits[i]! << 16;
      values = new Float32Array(words.buffer);
      break;
    }
    case "F64":
      values = Float32Array.from(new Float64Array(raw.slice().buffer));
      break;
  }
  return { shape: entry.shape, data: values };
}

/**
 * Parses safetensors bytes into float32 tensors.
 *
 * @param path names the file in error messages.
 * @throws {ModelFormatError} naming `path` when the file is truncated, the header is not
 * UTF-8 JSON of the expected form, a dtype is unsupported, or the offsets do not match
 * the shapes and the data section.
 */
export function parseSafetensors(bytes: Uint8Array, path: string): Safetensors {
  const fail = (problem: string, cause?: unknown) =>
    new ModelFormatError(path, `not a valid safetensors file: ${problem}`, { cause });
  if (bytes.length < 8) throw fail(`${bytes.length} bytes is too short for the header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw fail(`the header length ${headerLength} exceeds the ${bytes.length - 8} bytes after it`);
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER) throw fail(`the header length ${n} exceeds the limit of ${MAX_HEADER}`);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    throw fail(`the header is not UTF-8 JSON (${errorMessage(e)})`, e);
  }
  if (!isRecord(header)) throw fail("the header is not a JSON object");

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isRecord(value)) throw fail(`${METADATA_KEY} is not an object`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw fail(`${METADATA_KEY}.${k} is not a string`);
        metadata[k] = v;
      }
    } else {
      entries.push(parseEntry(name, value, path));
    }
  }

  const data = bytes.subarray(8 + n);
  const byStart = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const e of byStart) {
    if (e.begin !== covered) {
      throw fail(
        e.begin < covered
          ? `tensor "${e.name}" overlaps another tensor at byte ${e.begin}`
          : `bytes ${covered} to ${e.begin} of the data belong to no tensor`,
      );
    }
    covered = e.end;
  }
  if (covered !== data.length) {
    throw fail(
      covered > data.length
        ? `truncated: the tensors need ${covered} data bytes, the file has ${data.length}`
        : `${data.length - covered} bytes after the last tensor belong to no tensor`,
    );
  }
  const tensors = new Map<string, Tensor>();
  for (const e of entries) tensors.set(e.name, decodeTensor(e, data));
  return { tensors, metadata };
}

/**
 * Encodes float32 tensors as safetensors bytes (dtype F32), tensors sorted by name, the
 * header padded with spaces to a multiple of 8 bytes as the reference writer does.
 *
 * @throws {RangeError} when a tensor is named `__metadata__` or is empty-named, or a
 * tensor's data does not fit its shape.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  options: EncodeSafetensorsOptions = {},
): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header[METADATA_KEY] = { ...options.metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === METADATA_KEY || name === "") {
      throw new RangeError(`Cannot encode safetensors: "${name}" is not a valid tensor name`);
    }
    if (t.data.length !== sizeOf(t.shape)) {
      throw new RangeError(
        `Cannot encode safetensors: tensor "${name}" has ${t.data.length} values for shape [${
          t.shape.join(", ")
        }]`,
      );
    }
    const end = offset + t.data.length * 4;
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at); // little-endian hosts
    at += data.byteLength;
  }
  return out;
}

/**
 * Reads a safetensors file into float32 tensors.
 *
 * @throws {ModelFormatError} naming `path` when the file cannot be read or is not valid
 * (see {@linkcode parseSafetensors}).
 */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<Safetensors> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path, options.signal ? { signal: options.signal } : {});
  } catch (e) {
    if (options.signal?.aborted) throw e;
    const problem = e instanceof Deno.errors.NotFound ? "the file does not exist" : errorMessage(e);
    throw new ModelFormatError(path, problem, { cause: e });
  }
  return parseSafetensors(bytes, path);
}

/**
 * Writes float32 tensors to a safetensors file (see {@linkcode encodeSafetensors}). The
 * file is written in place; write to a temporary name and rename for atomicity.
 *
 * @throws {RangeError} as {@linkcode encodeSafetensors}; file-system errors as `Deno.writeFile`.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor>,
  options: EncodeSafetensorsOptions = {},
): Promise<void> {
  await Deno.writeFile(path, encodeSafetensors(tensors, options));
}
