/**
 * The pipeline's status snapshot: what `/status` returns, what `/metrics` renders and what
 * `<prefix>/stats` publishes.
 *
 * @module
 */
import type { CameraStatus } from "./frame.ts";

/** Latency percentiles in milliseconds over a recent window. */
export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  /** How many samples the window held. */
  readonly count: number;
}

/** Everything the service knows about itself at one moment. */
export interface PipelineStatus {
  /** Epoch milliseconds the service started. */
  readonly startedAt: number;
  readonly model: {
    readonly version: string;
    readonly source: string;
    /** `onnx (cpu, 2 threads)`, `tfjs (wasm)`, ... */
    readonly engine: string;
    /** True while the service runs a built-in untrained model. */
    readonly untrained: boolean;
  };
  readonly cameras: readonly CameraStatus[];
  readonly inference: {
    readonly batches: number;
    readonly frames: number;
    readonly meanBatchSize: number;
    /** Engine time per batch. */
    readonly batchMs: Percentiles;
    /** Capture to publish, per frame. */
    readonly captureToPublishMs: Percentiles;
  };
  readonly mqtt: {
    readonly url: string;
    readonly embedded: boolean;
    readonly connected: boolean;
    readonly queued: number;
    readonly published: number;
    readonly dropped: number;
  };
}
