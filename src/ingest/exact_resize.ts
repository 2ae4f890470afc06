/**
 * The ingest's PyTorch-exact frame resize.
 *
 * @module
 */
import { resizeBilinear } from "../image/resize.ts";
import type { Size } from "./ffmpeg_args.ts";

const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

/**
 * Resizes an RGB24 frame as the model's calibration did: bytes to float32 `byte / 255`
 * planes (PyTorch's `ToTensor`), {@linkcode resizeBilinear} (PyTorch's bilinear,
 * `align_corners=False`, no antialiasing), then each value times 255 rounded to the nearest
 * byte and clamped: the same steps as `imageToTensor` / `tensorToImage` in
 * `src/image/decode.ts`, so a frame matches what `predict` feeds the model for the same
 * image. A same-size "resize" returns the input itself.
 *
 * @throws {RangeError} when `rgb` does not hold `from.width * from.height * 3` bytes or a
 * size is not positive.
 */
export function resizeRgbExact(rgb: Uint8Array, from: Size, to: Size): Uint8Array {
  const plane = from.width * from.height;
  if (rgb.length !== plane * 3 || plane < 1) {
    throw new RangeError(
      `Cannot resize frame: a ${from.width}x${from.height} RGB frame needs ${
        plane * 3
      } bytes, got ${rgb.length}`,
    );
  }
  if (from.width === to.width && from.height === to.height) return rgb;
  const data = new Float32Array(3 * plane);
  for (let p = 0, i = 0; p < plane; p++, i += 3) {
    data[p] = BYTE_TO_UNIT[rgb[i]!]!;
    data[plane + p] = BYTE_TO_UNIT[rgb[i + 1]!]!;
    data[2 * plane + p] = BYTE_TO_UNIT[rgb[i + 2]!]!;
  }
  const out = resizeBilinear({ shape: [3, from.height, from.width], data }, [
    to.height,
    to.width,
  ]).data;
  const outPlane = to.width * to.height;
  const bytes = new Uint8Array(3 * outPlane);
  for (let p = 0, i = 0; p < outPlane; p++, i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round(out[c * outPlane + p]! * 255);
      bytes[i + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return bytes;
}
