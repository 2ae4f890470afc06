/**
 * The consensus filter: before a training on frames that no model has judged (a camera's
 * first model, or a new scene after drift), leave out the frames that differ from what most
 * of the frames show. A fixed inspection camera sees nearly the same picture frame after
 * frame; a defect passing by is a local difference from the per-pixel median of the set.
 *
 * Each frame becomes a `grid` x `grid` thumbnail (cell means per channel). The consensus is
 * the per-cell median over the frames; a frame's deviation is its largest cell difference
 * from the consensus (0..255). Frames whose deviation is an outlier — above the median
 * deviation plus `k` robust standard deviations (1.4826 x the median absolute deviation), and
 * above 1.5 x the median deviation + 2 (so that sensor noise alone never counts) — are left
 * out, at most `maxDropFraction` of the frames (the most deviant ones).
 *
 * @example
 * ```ts
 * import { consensusFilter, type RgbImage } from "./consensus.ts";
 *
 * function clean(frames: readonly RgbImage[]): RgbImage[] {
 *   const { keep, dropped } = consensusFilter(frames); // indices into `frames`
 *   return keep.map((i) => frames[i]!);
 * }
 * ```
 *
 * @module
 */

import { assertPositiveInteger } from "../core/check.ts";
import { median } from "../core/percentiles.ts";

/** An RGB24 image. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** width x height x 3 bytes. */
  readonly rgb: Uint8Array;
}

/** Options of {@linkcode consensusFilter}. */
export interface ConsensusOptions {
  /** Thumbnail cells per side. Default 32. */
  readonly grid?: number;
  /** Robust standard deviations above the median deviation that make an outlier. Default 6. */
  readonly k?: number;
  /** The most frames left out, as a share of all. Default 0.5. */
  readonly maxDropFraction?: number;
}

/** What {@linkcode consensusFilter} decided. */
export interface ConsensusResult {
  /** Indices of the frames kept, ascending. */
  readonly keep: number[];
  /** Indices of the frames left out, ascending. */
  readonly dropped: number[];
  /** Each frame's deviation from the consensus (0..255). */
  readonly deviations: number[];
  /** The deviation above which a frame was an outlier. */
  readonly bound: number;
}

function thumbnail(image: RgbImage, grid: number): Float64Array {
  const { width, height, rgb } = image;
  const sums = new Float64Array(grid * grid * 3);
  const counts = new Float64Array(grid * grid);
  for (let y = 0; y < height; y++) {
    const gy = Math.min(grid - 1, Math.floor((y * grid) / height));
    for (let x = 0; x < width; x++) {
      const gx = Math.min(grid - 1, Math.floor((x * grid) / width));
      const cell = gy * grid + gx;
      const i = (y * width + x) * 3;
      sums[cell * 3] = sums[cell * 3]! + rgb[i]!;
      sums[cell * 3 + 1] = sums[cell * 3 + 1]! + rgb[i + 1]!;
      sums[cell * 3 + 2] = sums[cell * 3 + 2]! + rgb[i + 2]!;
      counts[cell] = counts[cell]! + 1;
    }
  }
  for (let c = 0; c < grid * grid; c++) {
    const n = counts[c]! || 1;
    for (let ch = 0; ch < 3; ch++) sums[c * 3 + ch] = sums[c * 3 + ch]! / n;
  }
  return sums;
}

/**
 * Splits `frames` into the ones that agree with the consensus and the outliers; see the
 * module documentation. Fewer than 3 frames are all kept.
 *
 * @throws {RangeError} when the frames differ in size or an option is out of range.
 */
export function consensusFilter(
  frames: readonly RgbImage[],
  options: ConsensusOptions = {},
): ConsensusResult {
  const grid = options.grid ?? 32;
  const k = options.k ?? 6;
  const maxDrop = options.maxDropFraction ?? 0.5;
  assertPositiveInteger(grid, "grid", "Cannot filter frames");
  if (!(k > 0) || !(maxDrop >= 0 && maxDrop < 1)) {
    throw new RangeError(
      `Cannot filter frames: expected k > 0 and maxDropFraction in [0, 1), got ${k}, ${maxDrop}`,
    );
  }
  const first = frames[0];
  for (const f of frames) {
    if (f.width !== first!.width || f.height !== first!.height) {
      throw new RangeError(
        `Cannot filter frames: sizes differ (${first!.width}x${
          first!.height
        } and ${f.width}x${f.height})`,
      );
    }
  }
  const all = frames.map((_, i) => i);
  if (frames.length < 3) {
    return {
      keep: all,
      dropped: [],
      deviations: frames.map(() => 0),
      bound: Infinity,
    };
  }
  const g = Math.min(grid, first!.width, first!.height);
  const thumbs = frames.map((f) => thumbnail(f, g));
  const cells = g * g * 3;
  const consensus = new Float64Array(cells);
  const column = new Float64Array(frames.length);
  for (let c = 0; c < cells; c++) {
    for (let i = 0; i < thumbs.length; i++) column[i] = thumbs[i]![c]!;
    consensus[c] = median(column);
  }
  const deviations = thumbs.map((t) => {
    let worst = 0;
    for (let c = 0; c < cells; c++) worst = Math.max(worst, Math.abs(t[c]! - consensus[c]!));
    return worst;
  });
  const med = median(deviations);
  const mad = median(deviations.map((d) => Math.abs(d - med)));
  const bound = Math.max(med + k * 1.4826 * mad, 1.5 * med + 2);
  const outliers = all.filter((i) => deviations[i]! > bound)
    .sort((a, b) => deviations[b]! - deviations[a]!)
    .slice(0, Math.floor(frames.length * maxDrop));
  const out = new Set(outliers);
  return {
    keep: all.filter((i) => !out.has(i)),
    dropped: [...out].sort((a, b) => a - b),
    deviations,
    bound,
  };
}
