/**
 * The pipeline's status snapshot: what `/status` returns, what `/metrics` renders and what
 * `<prefix>/stats` publishes.
 *
 * @module
 */
import type { CameraStatus, Precision } from "./frame.ts";
import type { ModelState } from "./retrain_event.ts";

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
    /** `onnx (cpu, 2 threads)`, `onnx (webgpu, onnxruntime-web, <adapter>)`, `tfjs (wasm)`, ... */
    readonly engine: string;
    /**
     * The precision of the graph that serves `version` (`int8`: the model's int8 graph with
     * its own thresholds); absent = `fp32`.
     */
    readonly precision?: Precision;
    /** The GPU adapter the engine runs on; absent on the CPU. */
    readonly adapter?: GpuAdapterStatus;
    /** True while the service runs a built-in untrained model. */
    readonly untrained: boolean;
    /**
     * Per camera, the model version that scores its frames (a retrained model of its store
     * key, or `version`), or `learning` while its key learns its first model.
     */
    readonly cameras?: Readonly<Record<string, string>>;
    /**
     * Per camera, the precision of the graph that scores its frames (absent while its key
     * learns its first model).
     */
    readonly precisions?: Readonly<Record<string, Precision>>;
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
  /** On-device retraining, one entry per store key; absent when retraining is off. */
  readonly retrain?: readonly RetrainStatus[];
  readonly mqtt: {
    readonly url: string;
    readonly embedded: boolean;
    readonly connected: boolean;
    readonly queued: number;
    readonly published: number;
    readonly dropped: number;
  };
}

/** A GPU adapter as WebGPU reports it (software adapters leave some strings empty). */
export interface GpuAdapterStatus {
  /** PCI vendor id or name (`"65541"`: Mesa's 0x10005; `"4318"`: NVIDIA's 0x10de). */
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  /** The driver's name for it: `llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`. */
  readonly description: string;
  /** Whether it has `shader-f16` (half-precision shaders). */
  readonly shaderF16: boolean;
}

/** One store key's retraining (a camera, or cameras sharing a model), in `/status`. */
export interface RetrainStatus {
  readonly key: string;
  readonly cameras: readonly string[];
  /** The lifecycle state (see docs/mqtt.md, model; `RetrainEvent` in `retrain_event.ts`). */
  readonly state: ModelState;
  /** True while the key has no model yet: its cameras are not inspected, they learn. */
  readonly learning: boolean;
  /** The registry's serving version, or null before the first model. */
  readonly servingVersion: string | null;
  /**
   * The precision that serves `servingVersion` (the engine's: `fp32` when an int8 graph
   * could not be served), or null before the first model.
   */
  readonly servingPrecision: Precision | null;
  /** The rollback target, or null. */
  readonly previousVersion: string | null;
  /**
   * In words: while a training runs, what started it; after one, the latest event's
   * reason (`eventReason` in `retrain_event.ts`: the decision, say).
   */
  readonly reason: string | null;
  /** While collecting frames for a training: how many of how many. */
  readonly collecting: { readonly frames: number; readonly needed: number } | null;
  /** While training: the trainer's last progress. */
  readonly training: {
    readonly step: number;
    readonly total: number;
    readonly loss: number | null;
  } | null;
  /** When the next timed trigger is due (epoch ms), or null. */
  readonly nextDueAt: number | null;
  /** The drift factor's baseline (median raw normal score), once known. */
  readonly driftBaseline: number | null;
  /** Trainings started and failed since start. */
  readonly runs: number;
  readonly failures: number;
  /**
   * The frame selector: frames offered (scored), kept as normal, and skipped by reason
   * (`anomalous`, `above-quantile`, `interval`, `event-guard`, `duplicate`, ...).
   */
  readonly selector: {
    readonly offered: number;
    readonly kept: number;
    readonly skipped: Readonly<Record<string, number>>;
  };
  /** The frame store: frames kept, bytes, failed writes and the last write error. */
  readonly store: {
    readonly frames: number;
    readonly bytes: number;
    readonly writeErrors: number;
    readonly lastError: string | null;
  };
  /** Epoch ms of the last lifecycle event. */
  readonly updatedAt: number | null;
}
