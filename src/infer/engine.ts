/**
 * The one interface every inference backend implements (ONNX Runtime, TensorFlow.js,
 * anomalib's own ONNX export), chosen by a `type` field in configuration.
 *
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import type { AdapterInfo } from "./webgpu/adapter.ts";
import type { Precision } from "../core/frame.ts";

/** What an engine returns for a batch of N images. */
export interface InferenceOutput {
  /** N x 1 x H x W: the combined map, quantile-normalised when the model has quantiles. */
  readonly anomalyMap: Tensor;
  /** N x 1: the maximum of each map (raw score, before any threshold normalisation). */
  readonly predScore: Tensor;
  /** N x 1 x H x W student-teacher map after padding and resize, before normalisation. */
  readonly mapSt?: Tensor;
  /** N x 1 x H x W autoencoder map after padding and resize, before normalisation. */
  readonly mapAe?: Tensor;
  /** N x C x h x w autoencoder output (only when the engine was made with `debug`). */
  readonly aeOut?: Tensor;
  /** N anomalous flags, from engines whose model decides them itself (anomalib's export). */
  readonly predLabel?: Uint8Array;
}

/** Options of {@linkcode InferenceEngine.run}. */
export interface RunOptions {
  /** Aborts a run that has not started; a started native run finishes first. */
  readonly signal?: AbortSignal;
}

/** An inference backend holding a loaded model. Dispose it to free native memory. */
export interface InferenceEngine extends AsyncDisposable {
  /** `onnx`, `tfjs` or `anomalib-onnx`, with details such as the execution provider. */
  readonly description: string;
  /** The GPU adapter the engine runs on (WebGPU engines only). */
  readonly adapter?: AdapterInfo;
  /**
   * The precision of the graph that runs (`int8`: the model's int8 graph, whose own
   * thresholds apply: see `servedThresholds`). Absent: `fp32`.
   */
  readonly precision?: Precision;
  /**
   * What `predScore` is: `raw` (the map's maximum, thresholds applied by the caller) or
   * `normalized` (anomalib's export bakes thresholds in: 0.5 is the decision boundary).
   */
  readonly scoreKind: "raw" | "normalized";
  /** Input height and width the engine expects (N x 3 x H x W, RGB in [0, 1]). */
  readonly inputSize: readonly [number, number];
  /**
   * Runs a batch N x 3 x H x W (RGB in [0, 1]).
   *
   * @throws {RangeError} when the batch's shape does not match {@linkcode inputSize}.
   */
  run(batch: Tensor, options?: RunOptions): Promise<InferenceOutput>;
}
