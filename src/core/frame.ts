/**
 * What travels between the pipeline's stages: frames from cameras, and scored frames from
 * the inference stage.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";

/** One decoded frame, already at the model's input size, RGB interleaved. */
export interface Frame {
  /** The camera's name from the pipeline file (a topic-safe identifier). */
  readonly camera: string;
  /** Per-camera sequence number: starts at 0, +1 per frame read, never reset by reconnects. */
  readonly seq: number;
  /** When the frame was read from ffmpeg (epoch milliseconds): the capture time. */
  readonly capturedAt: number;
  readonly width: number;
  readonly height: number;
  /** width x height x 3 bytes, RGB24 (ffmpeg's `rgb24`). */
  readonly rgb: Uint8Array;
}

/**
 * The numeric precision a model's graph is served at (`model.precision`, `--precision`):
 * `int8` is a model's int8 graph, judged by its own thresholds; `fp16` the half-precision
 * graph on WebGPU.
 */
export type Precision = typeof PRECISIONS[number];

/** Every {@linkcode Precision}, in the order the docs list them. */
export const PRECISIONS = ["fp32", "fp16", "int8"] as const;

/** A frame with what the model said about it. */
export interface ScoredFrame {
  readonly frame: Frame;
  /** The raw score: the anomaly map's maximum. */
  readonly score: number;
  /** anomalib-normalised score in [0, 1] (0.5 = threshold), when thresholds are known. */
  readonly normalizedScore?: number;
  /** The raw-score threshold in force, when known. */
  readonly threshold?: number;
  /** Whether the frame is anomalous under the threshold policy. */
  readonly anomalous: boolean;
  /** 1 x H x W anomaly map at the model's input size. */
  readonly map: Tensor;
  /** The model version that scored it. */
  readonly modelVersion: string;
  /** The precision of the graph that scored it; absent = `fp32`. */
  readonly modelPrecision?: Precision;
  /** How many frames the batch held. */
  readonly batchSize: number;
  /** Milliseconds the engine took for the whole batch. */
  readonly inferenceMs: number;
  /** When inference finished (epoch milliseconds). */
  readonly scoredAt: number;
}

/** A camera's connection state. */
export type CameraState = "starting" | "online" | "reconnecting" | "offline";

/** A camera's status and counters, as published on `<prefix>/<camera>/status`. */
export interface CameraStatus {
  readonly camera: string;
  readonly state: CameraState;
  /** Frames read from ffmpeg since start. */
  readonly framesIn: number;
  /** Frames dropped before inference (the batcher's queue was full). */
  readonly framesDropped: number;
  /** ffmpeg restarts after a failure or end of stream. */
  readonly reconnects: number;
  /** ffmpeg restarts because no frame arrived in time. */
  readonly stalls: number;
  /** Epoch milliseconds of the last frame, if any. */
  readonly lastFrameAt?: number;
  /** The last error, redacted of credentials. */
  readonly lastError?: string;
}
