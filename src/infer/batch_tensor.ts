/**
 * Turns a batch of frames (RGB24 interleaved) into the engines' input: an N x 3 x H x W
 * float32 tensor with values `byte / 255` in [0, 1], channel-planar, as PyTorch's
 * `ToTensor` (and `image/decode.ts`'s `imageToTensor`, bit for bit).
 *
 * @module
 */
import type { Frame } from "../core/frame.ts";
import type { Tensor } from "../core/tensor.ts";

const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

/**
 * Converts frames of equal size into one N x 3 x H x W batch in a single pass.
 *
 * @example
 * ```ts
 * import { framesToTensor } from "./batch_tensor.ts";
 *
 * const rgb = new Uint8Array(256 * 256 * 3);
 * const frame = { camera: "line-1", seq: 0, capturedAt: 0, width: 256, height: 256, rgb };
 * const batch = framesToTensor([frame, frame]); // shape [2, 3, 256, 256]
 * ```
 *
 * @throws {RangeError} when there are no frames, the frames differ in size, or a frame's
 * `rgb` does not hold `width * height * 3` bytes.
 */
export function framesToTensor(frames: readonly Frame[]): Tensor {
  const first = frames[0];
  if (first === undefined) throw new RangeError("Cannot batch frames: no frames given");
  const { width, height } = first;
  const plane = width * height;
  const out = new Float32Array(frames.length * 3 * plane);
  for (let f = 0; f < frames.length; f++) {
    const frame = frames[f]!;
    if (frame.width !== width || frame.height !== height) {
      throw new RangeError(
        `Cannot batch frames: frame ${frame.camera}#${frame.seq} is ${frame.width}x${frame.height}, expected ${width}x${height}`,
      );
    }
    const rgb = frame.rgb;
    if (rgb.length !== plane * 3) {
      throw new RangeError(
        `Cannot batch frames: frame ${frame.camera}#${frame.seq} holds ${rgb.length} bytes, expected ${
          plane * 3
        }`,
      );
    }
    const r = f * 3 * plane;
    const g = r + plane;
    const b = g + plane;
    for (let p = 0, i = 0; p < plane; p++, i += 3) {
      out[r + p] = BYTE_TO_UNIT[rgb[i]!]!;
      out[g + p] = BYTE_TO_UNIT[rgb[i + 1]!]!;
      out[b + p] = BYTE_TO_UNIT[rgb[i + 2]!]!;
    }
  }
  return { shape: [frames.length, 3, height, width], data: out };
}
