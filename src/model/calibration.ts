/**
 * Calibration of a trained model on normal images: the map-normalisation quantiles and
 * the score thresholds, computed from each image's unnormalised maps. Training, int8
 * calibration and validation all compute them here, so a graph's quantiles and
 * thresholds always come from its own maps.
 *
 * @example
 * ```ts
 * import { calibrationFromMaps } from "./calibration.ts";
 *
 * const st = { shape: [1, 1, 2, 2], data: Float32Array.of(0, 1, 2, 3) };
 * const ae = { shape: [1, 1, 2, 2], data: Float32Array.of(3, 2, 1, 0) };
 * const { thresholds } = calibrationFromMaps([{ st, ae }]);
 * ```
 *
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import { quantiles } from "../core/torch_quantile.ts";
import type { Thresholds } from "./model.ts";

/** Unnormalised anomaly maps of one image after padding and resizing (SPEC steps 1-5). */
export interface RawMaps {
  /** 1 x 1 x H x W. */
  readonly st: Tensor;
  /** 1 x 1 x H x W. */
  readonly ae: Tensor;
}

/** The map-normalisation quantiles and score thresholds from the calibration images. */
export interface Calibration {
  readonly qaSt: number;
  readonly qbSt: number;
  readonly qaAe: number;
  readonly qbAe: number;
  /** On the raw score (the anomaly map's maximum after the quantile normalisation). */
  readonly thresholds: Thresholds;
  /** How many images. */
  readonly images: number;
}

/**
 * Computes the quantiles (0.9 and 0.995, linear interpolation, over every pixel of every
 * image, st and ae separately) and thresholds: each image's score is the maximum of
 * `0.5 * 0.1 (st - qa_st) / (qb_st - qa_st) + 0.5 * 0.1 (ae - qa_ae) / (qb_ae - qa_ae)`;
 * with normal images only the threshold is the highest score (anomalib's F1 threshold
 * on normal data), `min` / `max` the lowest and highest.
 *
 * @throws {RangeError} when `maps` is empty or the maps differ in size.
 */
export function calibrationFromMaps(maps: readonly RawMaps[]): Calibration {
  const first = maps[0];
  if (first === undefined) throw new RangeError("Cannot calibrate on no images");
  const n = first.st.data.length;
  const st = new Float32Array(n * maps.length);
  const ae = new Float32Array(n * maps.length);
  maps.forEach((m, i) => {
    if (m.st.data.length !== n || m.ae.data.length !== n) {
      throw new RangeError(`Cannot calibrate: the maps of image ${i} differ in size`);
    }
    st.set(m.st.data, i * n);
    ae.set(m.ae.data, i * n);
  });
  const [qaSt = 0, qbSt = 0] = quantiles(st, [0.9, 0.995]);
  const [qaAe = 0, qbAe = 0] = quantiles(ae, [0.9, 0.995]);
  const f = Math.fround;
  const scores = maps.map((m) => {
    let best = -Infinity;
    for (let p = 0; p < n; p++) {
      const a = f(f(0.1 * f(m.st.data[p]! - qaSt)) / f(qbSt - qaSt));
      const b = f(f(0.1 * f(m.ae.data[p]! - qaAe)) / f(qbAe - qaAe));
      const v = f(f(0.5 * a) + f(0.5 * b));
      if (v > best) best = v;
    }
    return best;
  });
  const max = Math.max(...scores);
  const min = Math.min(...scores);
  return { qaSt, qbSt, qaAe, qbAe, thresholds: { threshold: max, min, max }, images: maps.length };
}
