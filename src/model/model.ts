/**
 * A loaded EfficientAD model: architecture settings, weights and what the project knows
 * about it (provenance, thresholds).
 *
 * @module
 */
import type { EfficientAdConfig } from "./config.ts";
import type { Quantiles, StateDict } from "./state_dict.ts";

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

/** How the activation ranges of an int8 graph were chosen from the calibration frames. */
export type CalibrationMethod = "minmax" | "percentile" | "entropy";

/** How an int8 graph was calibrated (recorded in `model.json`). */
export interface Int8Calibration {
  readonly method: CalibrationMethod;
  /** The percentile of `percentile` (for example 99.99), when that method was used. */
  readonly percentile?: number;
  /** How many normal frames calibrated the activation ranges, quantiles and thresholds. */
  readonly frames: number;
  /** How long the calibration took, in seconds. */
  readonly seconds: number;
  /** ISO time of the calibration. */
  readonly createdAt: string;
}

/**
 * The int8 graph of a project model: a self-contained ONNX file beside the weights, with
 * its own quantiles (inside the graph) and thresholds, both computed on the int8 graph's
 * own maps: fp32 values are never reused for it.
 */
export interface Int8Graph {
  /** The ONNX file's path (absolute, or relative to the working directory). */
  readonly path: string;
  /** Hex sha256 of the file, checked before it is loaded. */
  readonly sha256: string;
  readonly calibration: Int8Calibration;
  readonly quantiles: Quantiles;
  readonly thresholds: Thresholds;
}

/** A complete EfficientAD model in memory. */
export interface EfficientAdModel {
  readonly config: EfficientAdConfig;
  /** anomalib's state-dict keys; teacher, student, ae, mean_std and quantiles. */
  readonly stateDict: StateDict;
  readonly thresholds?: Thresholds;
  readonly provenance: Provenance;
  /** The resize used when calibrating (frames must be resized the same way). */
  readonly resize: ResizeMethod;
  /** The int8 graph, when the model directory has one. */
  readonly int8?: Int8Graph;
}
