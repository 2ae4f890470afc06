/**
 * Anomaly maps as pictures: values coloured with the jet colormap, optionally blended
 * over the frame, encoded as PNG.
 *
 * Jet is the colormap of anomalib's own visualiser (OpenCV's `COLORMAP_JET`), so pictures
 * made here read like anomalib's: low values dark blue, then cyan, yellow and dark red.
 * It is computed in its closed form, channel `k` = clamp(1.5 - |4x - k|, 0, 1) with
 * k = 3, 2, 1 for red, green and blue, which is within 1/16 of OpenCV's table (the same
 * shape, sampled half a step apart). The blend default, alpha 0.4, is also anomalib's.
 *
 * @module
 */
import { formatShape, type Tensor } from "../core/tensor.ts";
import { encodePng, imageToTensor, type RgbImage, tensorToImage } from "./decode.ts";
import { resizeBilinear } from "./resize.ts";

/** Options of {@linkcode heatmapPng} and {@linkcode heatmapImage}. */
export interface HeatmapOptions {
  /** The value drawn in the coldest colour; lower values are clamped. Default: the map's minimum. */
  readonly min?: number;
  /** The value drawn in the hottest colour; higher values are clamped. Default: the map's maximum. */
  readonly max?: number;
  /**
   * An image to draw the colours over (usually the input frame). It is resized to the
   * map's size with {@linkcode resizeBilinear} when the sizes differ.
   */
  readonly background?: RgbImage;
  /** Opacity of the colours over `background`, in [0, 1]. Default 0.4 (anomalib's); unused without a background. */
  readonly alpha?: number;
}

/** Jet sampled at 256 points: entry `i` (RGB bytes) is the colour of `i / 255`. */
const JET_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    // Channel k peaks (at 1) around x = k / 4 for k = 3, 2, 1 (red, green, blue).
    [3, 2, 1].forEach((k, ch) => {
      lut[i * 3 + ch] = Math.round(Math.min(Math.max(1.5 - Math.abs(4 * x - k), 0), 1) * 255);
    });
  }
  return lut;
})();

/**
 * The jet colour of `x` as RGB bytes; `x` is clamped to [0, 1] (NaN is treated as 0).
 *
 * @example
 * ```ts
 * jetColor(0); // [0, 0, 128]: dark blue
 * jetColor(1); // [128, 0, 0]: dark red
 * ```
 */
export function jetColor(x: number): [number, number, number] {
  const i = x > 0 ? Math.round(Math.min(x, 1) * 255) * 3 : 0;
  return [JET_LUT[i]!, JET_LUT[i + 1]!, JET_LUT[i + 2]!];
}

/** Height and width of a map of shape H x W, 1 x H x W or 1 x 1 x H x W. */
function mapSize(map: Tensor): [number, number] {
  const rank = map.shape.length;
  const h = map.shape[rank - 2];
  const w = map.shape[rank - 1];
  const leadingOnes = map.shape.slice(0, -2).every((d) => d === 1);
  if (h === undefined || w === undefined || h < 1 || w < 1 || rank > 4 || !leadingOnes) {
    throw new RangeError(
      `Cannot draw heatmap of shape ${formatShape(map.shape)}: expected H x W or 1 x H x W`,
    );
  }
  return [h, w];
}

/**
 * Colours an anomaly map with jet and, when a background is given, blends the colours
 * over it: `alpha * colour + (1 - alpha) * background`, rounded to bytes.
 *
 * Values are scaled linearly so that `min` is the coldest and `max` the hottest colour
 * (values outside are clamped; NaN is drawn cold). When `min` equals `max`, values above
 * it are hot and the rest cold.
 *
 * @param map an H x W, 1 x H x W or 1 x 1 x H x W tensor.
 * @returns an RGB image of the map's size.
 * @throws {RangeError} when the map's shape is not one of those, `min` or `max` is not
 * finite, `min` > `max`, `alpha` is outside [0, 1], or the background's data does not fit
 * its size.
 */
export function heatmapImage(map: Tensor, options: HeatmapOptions = {}): RgbImage {
  const [height, width] = mapSize(map);
  const data = map.data;
  let { min, max } = options;
  if (min === undefined || max === undefined) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo > hi) lo = hi = 0; // all NaN
    min ??= lo;
    max ??= hi;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(
      `Cannot draw heatmap with min ${min} and max ${max}: expected finite min <= max`,
    );
  }
  const alpha = options.alpha ?? 0.4;
  if (!(alpha >= 0 && alpha <= 1)) {
    throw new RangeError(`Cannot draw heatmap with alpha ${alpha}: expected a value in [0, 1]`);
  }
  const out = new Uint8Array(width * height * 3);
  const range = max - min;
  for (let p = 0; p < data.length; p++) {
    const v = data[p]!;
    const x = range > 0 ? (v - min) / range : v > max ? 1 : 0;
    const i = x > 0 ? Math.round(Math.min(x, 1) * 255) * 3 : 0;
    out[p * 3] = JET_LUT[i]!;
    out[p * 3 + 1] = JET_LUT[i + 1]!;
    out[p * 3 + 2] = JET_LUT[i + 2]!;
  }
  if (options.background === undefined) return { width, height, data: out };

  const bg = fitBackground(options.background, height, width);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.round(alpha * out[i]! + (1 - alpha) * bg[i]!);
  }
  return { width, height, data: out };
}

function fitBackground(img: RgbImage, height: number, width: number): Uint8Array {
  const t = imageToTensor(img); // checks that the data fits the size
  if (img.width === width && img.height === height) return img.data;
  return tensorToImage(resizeBilinear(t, [height, width])).data;
}

/**
 * Draws an anomaly map as an RGB PNG: jet colours, optionally blended over a
 * background image. See {@linkcode heatmapImage} for the scaling and blending rules.
 *
 * @param map an H x W, 1 x H x W or 1 x 1 x H x W tensor.
 * @returns the PNG file's bytes, `W` x `H` pixels.
 * @throws {RangeError} as {@linkcode heatmapImage}.
 *
 * @example
 * ```ts
 * import { heatmapPng } from "./heatmap.ts";
 * import { tensor } from "../core/tensor.ts";
 *
 * const map = tensor([1, 1, 64, 64]); // one anomaly map, all zero
 * const png = heatmapPng(map, { min: 0, max: 1 }); // PNG bytes, 64 x 64
 * ```
 */
export function heatmapPng(map: Tensor, options: HeatmapOptions = {}): Uint8Array {
  return encodePng(heatmapImage(map, options));
}
