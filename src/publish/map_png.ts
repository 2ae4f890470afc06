/**
 * The anomaly map's wire format on `<prefix>/<camera>/map`: an 8-bit greyscale PNG with the
 * value range in a `tEXt` chunk, so that any PNG viewer shows the picture and a consumer
 * can turn the grey levels back into map values.
 *
 * Encoding, for a map resized (bilinear) to the configured width x height:
 *
 * ```text
 * min = minimum of the resized map, max = its maximum
 * q   = round(255 * (value - min) / (max - min)), clamped to 0..255   (q = 0 when max = min)
 * ```
 *
 * Decoding: `value = min + q * (max - min) / 255`, within `(max - min) / 510` of the
 * resized map. The PNG holds, after `IHDR`, one `tEXt` chunk whose keyword is
 * `efficientad` and whose text is ASCII JSON: a {@linkcode MapHeader}.
 *
 * @module
 */
import { deflateSync } from "node:zlib";
import { InputError } from "../core/errors.ts";
import { formatShape, type Tensor } from "../core/tensor.ts";
import { decodeImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";

/** The `encoding` of the map payload. */
export const MAP_ENCODING = "png-gray8-linear";

/** The keyword of the PNG `tEXt` chunk that holds the {@linkcode MapHeader}. */
export const MAP_TEXT_KEYWORD = "efficientad";

/** What a consumer needs to de-quantise the map (the PNG's `tEXt` chunk, as JSON). */
export interface MapHeader {
  /** Schema version: 1. */
  readonly v: 1;
  /** Always `png-gray8-linear`. */
  readonly encoding: typeof MAP_ENCODING;
  readonly camera: string;
  readonly seq: number;
  /** Capture time of the frame, epoch milliseconds. */
  readonly captured_at_ms: number;
  /** The map value that grey level 0 stands for. */
  readonly min: number;
  /** The map value that grey level 255 stands for. */
  readonly max: number;
  /** PNG width, pixels. */
  readonly width: number;
  /** PNG height, pixels. */
  readonly height: number;
}

/** Options of {@linkcode encodeMapPng}. */
export interface EncodeMapOptions {
  readonly camera: string;
  readonly seq: number;
  /** Capture time, epoch milliseconds. */
  readonly capturedAt: number;
  /** Output height and width; default the map's own size. */
  readonly size?: readonly [number, number];
}

/** A map encoded by {@linkcode encodeMapPng}. */
export interface EncodedMap {
  /** The PNG file. */
  readonly png: Uint8Array;
  /** The header written into it. */
  readonly header: MapHeader;
}

/** A map decoded by {@linkcode decodeMapPng}. */
export interface DecodedMap {
  readonly header: MapHeader;
  /** `height x width` de-quantised values, row-major. */
  readonly values: Float32Array;
}

/** Height and width of a map of shape H x W, 1 x H x W or 1 x 1 x H x W. */
function mapPlane(map: Tensor): [number, number] {
  const s = map.shape;
  const lead = s.slice(0, -2);
  const h = s[s.length - 2];
  const w = s[s.length - 1];
  if (s.length < 2 || s.length > 4 || lead.some((d) => d !== 1) || !h || !w) {
    throw new RangeError(
      `Cannot encode anomaly map of shape ${
        formatShape(s)
      }: expected H x W, 1 x H x W or 1 x 1 x H x W`,
    );
  }
  return [h, w];
}

/**
 * Resizes a map (bilinear, as {@linkcode resizeBilinear}) and encodes it as an 8-bit
 * greyscale PNG with its value range in a `tEXt` chunk (see the module doc).
 *
 * NaN values are stored as 0 and left out of the range; infinities are clamped.
 *
 * @throws {RangeError} when the map is not a single plane or the size is not positive
 * integers.
 */
export function encodeMapPng(map: Tensor, options: EncodeMapOptions): EncodedMap {
  const [h, w] = mapPlane(map);
  const [height, width] = options.size ?? [h, w];
  const values = height === h && width === w
    ? map.data
    : resizeBilinear({ shape: [h, w], data: map.data }, [height, width]).data;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    // All NaN, or infinite values: fall back to the finite ones, or to 0..0.
    min = Infinity;
    max = -Infinity;
    for (const v of values) {
      if (Number.isFinite(v)) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
    if (min > max) min = max = 0;
  }
  const scale = max > min ? 255 / (max - min) : 0;
  const gray = new Uint8Array(width * height);
  for (let i = 0; i < gray.length; i++) {
    const q = Math.round((values[i]! - min) * scale);
    gray[i] = q > 255 ? 255 : q > 0 ? q : 0; // NaN -> 0
  }
  const header: MapHeader = {
    v: 1,
    encoding: MAP_ENCODING,
    camera: options.camera,
    seq: options.seq,
    captured_at_ms: options.capturedAt,
    min,
    max,
    width,
    height,
  };
  return { png: encodeGray8Png(gray, width, height, header), header };
}

/**
 * Decodes a map payload: the PNG's grey levels de-quantised with the range in its header.
 * This is the reference decoder for consumers written in TypeScript.
 *
 * @param name used in error messages (a topic or a file name).
 * @throws {InputError} when the bytes are not a PNG, have no `efficientad` `tEXt` chunk,
 * or the header does not match the image.
 */
export function decodeMapPng(png: Uint8Array, name = "anomaly map"): DecodedMap {
  const text = readPngText(png, name).get(MAP_TEXT_KEYWORD);
  if (text === undefined) {
    throw new InputError(`Cannot decode ${name}: no tEXt chunk "${MAP_TEXT_KEYWORD}"`);
  }
  let header: MapHeader;
  try {
    header = JSON.parse(text) as MapHeader;
  } catch (e) {
    throw new InputError(`Cannot decode ${name}: the header is not JSON`, { cause: e });
  }
  if (header.encoding !== MAP_ENCODING || typeof header.min !== "number") {
    throw new InputError(`Cannot decode ${name}: unknown encoding ${String(header.encoding)}`);
  }
  const img = decodeImage(png, name);
  if (img.width !== header.width || img.height !== header.height) {
    throw new InputError(
      `Cannot decode ${name}: the header says ${header.width}x${header.height}, the image is ${img.width}x${img.height}`,
    );
  }
  const step = (header.max - header.min) / 255;
  const values = new Float32Array(img.width * img.height);
  for (let i = 0; i < values.length; i++) values[i] = header.min + img.data[i * 3]! * step;
  return { header, values };
}

/**
 * The `tEXt` chunks of a PNG, keyword to text (Latin-1).
 *
 * @throws {InputError} when the bytes are not a PNG or a chunk runs past the end.
 */
export function readPngText(png: Uint8Array, name = "PNG"): Map<string, string> {
  if (png.length < 8 || !PNG_SIGNATURE.every((b, i) => png[i] === b)) {
    throw new InputError(`Cannot decode ${name}: not a PNG file`);
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out = new Map<string, string>();
  let p = 8;
  while (p + 8 <= png.length) {
    const length = view.getUint32(p);
    const type = String.fromCharCode(...png.subarray(p + 4, p + 8));
    const end = p + 12 + length;
    if (end > png.length) throw new InputError(`Cannot decode ${name}: truncated ${type} chunk`);
    if (type === "tEXt") {
      const data = png.subarray(p + 8, p + 8 + length);
      const nul = data.indexOf(0);
      if (nul > 0) out.set(latin1(data.subarray(0, nul)), latin1(data.subarray(nul + 1)));
    }
    if (type === "IEND") break;
    p = end;
  }
  return out;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** JSON with every non-ASCII character escaped, so it is valid Latin-1 `tEXt`. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** PNG colour type 0 (greyscale), bit depth 8, rows filtered with `Sub`, plus one tEXt chunk. */
function encodeGray8Png(
  gray: Uint8Array,
  width: number,
  height: number,
  header: MapHeader,
): Uint8Array {
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) {
    const row = y * width;
    const o = y * (width + 1);
    raw[o] = 1; // filter type Sub: each byte minus its left neighbour
    raw[o + 1] = gray[row]!;
    for (let x = 1; x < width; x++) raw[o + 1 + x] = (gray[row + x]! - gray[row + x - 1]!) & 0xff;
  }
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr.set([8, 0, 0, 0, 0], 8); // bit depth 8, greyscale, deflate, adaptive filtering, no interlace
  const text = new TextEncoder().encode(`${MAP_TEXT_KEYWORD}\0${asciiJson(header)}`);
  const chunks = [
    chunk("IHDR", ihdr),
    chunk("tEXt", text),
    // The platform's zlib, level 6, with a window just large enough for the whole image
    // (compression as with the full 32 KiB window, less state to set up per map): a 64x64
    // map's PNG in about half the CPU of fflate's level 3, which builds its tables on every
    // call, for the same size.
    chunk("IDAT", deflateSync(raw, { level: 6, windowBits: windowBitsFor(raw.length) })),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(8 + chunks.reduce((n, c) => n + c.length, 0));
  out.set(PNG_SIGNATURE, 0);
  let p = 8;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** The smallest zlib window (9..15 bits) that holds `length` bytes. */
function windowBitsFor(length: number): number {
  return Math.min(15, Math.max(9, Math.ceil(Math.log2(Math.max(length, 1)))));
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
