/**
 * NumPy `.npy` files (format versions 1-3), as written by `numpy.save`.
 *
 * Reads little-endian float32, float64, float16 and uint8 arrays in C order into float32
 * tensors; writes float32.
 *
 * @module
 */
import { errorMessage, InputError } from "./errors.ts";
import { sizeOf, type Tensor } from "./tensor.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Converts an IEEE half-precision bit pattern to a number. */
export function halfToFloat(h: number): number {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f === 0 ? s * Infinity : NaN;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Parses `.npy` bytes into a float32 tensor.
 *
 * @param name used in error messages (a file path).
 * @throws {InputError} when the bytes are not a supported `.npy` array.
 */
export function parseNpy(bytes: Uint8Array, name = "array"): Tensor {
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new InputError(`Cannot read ${name}: not a .npy file (bad magic)`);
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(start, start + headerLen),
  );
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`Cannot read ${name}: malformed .npy header ${JSON.stringify(header)}`);
  }
  if (fortran === "True") {
    throw new InputError(`Cannot read ${name}: Fortran-order arrays are not supported`);
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  const n = sizeOf(shape);
  const offset = start + headerLen;
  const itemSize: Record<string, number> = { "<f4": 4, "<f8": 8, "<f2": 2, "|u1": 1 };
  const size = itemSize[descr];
  if (size === undefined) {
    throw new InputError(
      `Cannot read ${name}: dtype ${descr} is not supported (use float32, float64, float16 or uint8)`,
    );
  }
  if (bytes.length - offset < n * size) {
    throw new InputError(
      `Cannot read ${name}: truncated, expected ${n * size} data bytes, found ${
        bytes.length - offset
      }`,
    );
  }
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = offset + i * size;
    data[i] = descr === "<f4"
      ? view.getFloat32(p, true)
      : descr === "<f8"
      ? view.getFloat64(p, true)
      : descr === "<f2"
      ? halfToFloat(view.getUint16(p, true))
      : bytes[p]!;
  }
  return { shape, data };
}

/** Encodes a float32 tensor as `.npy` (version 1.0) bytes. */
export function encodeNpy(t: Tensor): Uint8Array {
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + t.data.length * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const body = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  out.set(body, 10 + header.length); // little-endian hosts only, as every supported target
  return out;
}

/**
 * Reads a `.npy` file into a float32 tensor.
 *
 * @throws {InputError} when the file cannot be read or parsed; the message names it.
 */
export async function readNpy(path: string): Promise<Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new InputError(`Cannot read ${path}: ${errorMessage(e)}`, { cause: e });
  }
  return parseNpy(bytes, path);
}

/** Writes a float32 tensor to a `.npy` file. */
export async function writeNpy(path: string, t: Tensor): Promise<void> {
  await Deno.writeFile(path, encodeNpy(t));
}
