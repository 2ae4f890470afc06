/**
 * The threshold policy: what makes a frame anomalous. The pipeline file states it
 * (`model.threshold`), the inference stage applies it (`judgeScore` in
 * `src/infer/judge.ts`).
 *
 * @module
 */

/** The threshold that makes a frame anomalous. */
export type ThresholdPolicy =
  /** The model's own calibrated threshold (frames are never anomalous without one). */
  | { readonly policy: "model" }
  /** A fixed raw-score threshold. */
  | { readonly policy: "fixed"; readonly value: number };
