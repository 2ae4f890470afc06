/**
 * A loaded EfficientAD model: architecture settings, weights and what the project knows
 * about it (provenance, thresholds).
 *
 * @module
 */
import type { EfficientAdConfig } from "./config.ts";
import type { StateDict } from "./state_dict.ts";

/**
 * Score thresholds in anomalib's sense: `threshold` on the raw score separates normal
 * from anomalous; `min` / `max` are the raw score range seen on validation data, used
 * for the normalised score `clamp((p - threshold) / (max - min) + 0.5, 0, 1)`.
 */
export interface Thresholds {
  readonly threshold: number;
  readonly min: number;
  readonly max: number;
}

/** Where a model came from, for the logs and the MQTT payloads. */
export interface Provenance {
  /** A short model version: a name, or a hash of the weights. */
  readonly version: string;
  /** How it was made: `anomalib`, `efficientad-ts train`, `synthetic`, ... */
  readonly source: string;
  /** ISO time the model was created, when known. */
  readonly createdAt?: string;
  /** Free-form notes (training data, steps, seed). */
  readonly notes?: string;
}

/** How frames must be resized before this model sees them (the calibration's method). */
export type ResizeMethod = "bilinear";

/** A complete EfficientAD model in memory. */
export interface EfficientAdModel {
  readonly config: EfficientAdConfig;
  /** anomalib's state-dict keys; teacher, student, ae, mean_std and quantiles. */
  readonly stateDict: StateDict;
  readonly thresholds?: Thresholds;
  readonly provenance: Provenance;
  /** The resize used when calibrating (frames must be resized the same way). */
  readonly resize: ResizeMethod;
}
