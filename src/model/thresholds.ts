/**
 * anomalib's score normalisation: `clamp((p - threshold) / (max - min) + 0.5, 0, 1)`, so
 * that 0.5 is the decision boundary whatever the model's raw scale.
 *
 * @module
 */
import type { EfficientAdModel, Thresholds } from "./model.ts";
import type { Precision } from "../core/frame.ts";

/** Normalises a raw score with a model's thresholds; anomalous above 0.5. */
export function normalizeScore(raw: number, t: Thresholds): number {
  const span = t.max - t.min;
  const v = (raw - t.threshold) / (span > 0 ? span : 1) + 0.5;
  return Math.min(1, Math.max(0, v));
}

/** Whether a raw score is anomalous under the thresholds (strictly above the threshold). */
export function isAnomalous(raw: number, t: Thresholds): boolean {
  return raw > t.threshold;
}

/**
 * The thresholds that judge a model's scores at a precision: an int8 graph's own (computed
 * on its own maps), else the model's. fp32 thresholds never judge int8 scores.
 */
export function servedThresholds(
  model: Pick<EfficientAdModel, "thresholds" | "int8">,
  precision: Precision = "fp32",
): Thresholds | undefined {
  return precision === "int8" ? model.int8?.thresholds : model.thresholds;
}
