/**
 * How a score becomes a decision under the threshold policy
 * ({@linkcode ThresholdPolicy}, `src/core/threshold_policy.ts`) of the inference stage.
 *
 * - `{ policy: "model" }`: use the model's own {@linkcode Thresholds} (anomalib's
 *   `threshold`, `min`, `max`): anomalous when the raw score is strictly above
 *   `threshold`, normalised score `clamp((p - threshold) / (max - min) + 0.5, 0, 1)`. A model
 *   without thresholds never calls a frame anomalous (the stage says so once in the log).
 * - `{ policy: "fixed", value }`: anomalous when the raw score is strictly above `value`; the
 *   normalised score uses `value` with the model's `min` / `max` when the model has them.
 *
 * Engines whose `scoreKind` is `normalized` (anomalib's ONNX export, thresholds baked in)
 * report the normalised score as their score: under `model` a frame is anomalous when the
 * engine's own label says so, else when the score is above 0.5; under `fixed` the value is
 * compared with that normalised score. No raw threshold is reported for them.
 *
 * @module
 */
import type { Thresholds } from "../model/model.ts";
import { isAnomalous, normalizeScore } from "../model/thresholds.ts";
import type { ThresholdPolicy } from "../core/threshold_policy.ts";

/** What {@linkcode judgeScore} needs to know about the engine and model. */
export interface JudgeContext {
  /** The policy in force. */
  readonly policy: ThresholdPolicy;
  /** The engine's `scoreKind`. */
  readonly scoreKind: "raw" | "normalized";
  /** The model's thresholds, when known. */
  readonly thresholds?: Thresholds;
  /** The engine's own anomalous flag for this frame, when it gives one. */
  readonly label?: boolean;
}

/** The decision for one score. */
export interface Judgement {
  /** Whether the frame is anomalous. */
  readonly anomalous: boolean;
  /** Normalised score in [0, 1] with 0.5 at the threshold, when it can be computed. */
  readonly normalizedScore?: number;
  /** The raw-score threshold in force, when there is one. */
  readonly threshold?: number;
}

/** Decides whether a score is anomalous under a policy; see the module documentation. */
export function judgeScore(score: number, context: JudgeContext): Judgement {
  const { policy, thresholds } = context;
  if (context.scoreKind === "normalized") {
    const anomalous = policy.policy === "fixed"
      ? score > policy.value
      : context.label ?? score > 0.5;
    return { anomalous, normalizedScore: score };
  }
  if (policy.policy === "fixed") {
    const t = policy.value;
    return {
      anomalous: score > t,
      threshold: t,
      ...(thresholds
        ? { normalizedScore: normalizeScore(score, { ...thresholds, threshold: t }) }
        : {}),
    };
  }
  if (thresholds === undefined) return { anomalous: false };
  return {
    anomalous: isAnomalous(score, thresholds),
    normalizedScore: normalizeScore(score, thresholds),
    threshold: thresholds.threshold,
  };
}
