/**
 * The storage dtypes of PyTorch checkpoints and how each becomes float32 (byte order
 * included). Internal to `../torch_checkpoint.ts`.
 *
 * @module
 */
import { halfToFloat } from "../../core/npy.ts";

/** Decodes `count` elements at the start of `bytes` (the result may be a view on them). */
type Decoder = (bytes: Uint8Array, count: number, little: boolean) => Float32Array;

/** An element type: its size in bytes and, when convertible, a decoder to float32. */
export interface DType {
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

export const DTYPES: Readonly<Record<string, DType>> = Object.fromEntries(
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
export const STORAGE_DTYPES: Readonly<Record<string, string>> = {
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
export const DTYPE_ALIASES: Readonly<Record<string, string>> = {
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
