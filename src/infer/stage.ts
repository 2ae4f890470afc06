/**
 * The inference stage: batches of frames in, one {@linkcode ScoredFrame} per frame out, in
 * the batch's order.
 *
 * Backpressure, per edge:
 * - **batcher -> inference** (`writable`, high-water mark 1): one batch in flight. A pipe
 *   reads the next batch from the batcher only once the engine has finished the current
 *   one, so the batcher's next batch fills meanwhile.
 * - **inference -> publisher** (`readable`, high-water mark `outputHighWaterMark` scored
 *   frames, default 64): every scored frame is queued, never dropped here; when the queue
 *   is full the next batch waits before running. The publisher must not block (it keeps
 *   its own bounded queue and counts its drops), so in practice this edge does not stall.
 *
 * **Several models.** Cameras can be routed to their own model (`routes`: camera -> key, and
 * {@linkcode InferenceStage.setModel} with that key): a batch is split by model, each part
 * runs on its engine, and the scored frames come out in the batch's order. A camera whose
 * key has no model yet is scored by the default model.
 *
 * A batch whose engine run fails (throws) is dropped and counted, and the stage carries on;
 * each distinct error is logged on its 1st, 10th, 100th... occurrence, with its count.
 *
 * @example
 * ```ts
 * import { InferenceStage } from "./stage.ts";
 * import type { Frame, Precision, ScoredFrame } from "../core/frame.ts";
 * import type { InferenceEngine } from "./engine.ts";
 *
 * async function score(
 *   engine: InferenceEngine,
 *   batches: ReadableStream<Frame[]>,
 *   publisher: { writable: WritableStream<ScoredFrame> },
 *   signal: AbortSignal,
 * ): Promise<void> {
 *   const stage = new InferenceStage({
 *     engine,
 *     model: { version: "v1" },
 *     threshold: { policy: "model" },
 *   });
 *   await batches.pipeThrough(stage).pipeTo(publisher.writable, { signal });
 * }
 * ```
 *
 * @module
 */
import type { Frame, Precision, ScoredFrame } from "../core/frame.ts";
import { assertPositiveInteger } from "../core/check.ts";
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { type PercentileSnapshot, RollingPercentiles } from "../core/percentiles.ts";
import { item } from "../core/tensor.ts";
import type { InferenceEngine, InferenceOutput } from "./engine.ts";
import type { Thresholds } from "../model/model.ts";
import { BatchPacker } from "./batch_tensor.ts";
import type { ThresholdPolicy } from "../core/threshold_policy.ts";
import { judgeScore } from "./judge.ts";

/** What the stage needs to know about the model an engine serves. */
export interface ModelInfo {
  /** Goes into every scored frame's `modelVersion`. */
  readonly version: string;
  /**
   * The thresholds that judge this engine's scores, for the `model` threshold policy: those
   * of the precision the engine serves (an int8 graph's own; see `servedThresholds`).
   */
  readonly thresholds?: Thresholds;
}

/** Options of {@linkcode InferenceStage}. */
export interface InferenceStageOptions {
  /** The engine to run; the stage does not own it (the caller disposes it). */
  readonly engine: InferenceEngine;
  /** The model the engine serves. */
  readonly model: ModelInfo;
  /** The threshold policy (the pipeline file's `model.threshold`, resolved). */
  readonly threshold: ThresholdPolicy;
  /** Receives engine failures, model swaps and the "no thresholds" notice. */
  readonly logger?: Logger;
  /** How many recent batch times the latency percentiles cover. Default 1024. */
  readonly latencyWindow?: number;
  /** Scored frames the readable side queues before the next batch waits. Default 64. */
  readonly outputHighWaterMark?: number;
  /** Epoch milliseconds for `scoredAt`. Default `Date.now`. */
  readonly now?: () => number;
  /** Camera -> model key, for cameras served by their own model (see `setModel`). */
  readonly routes?: ReadonlyMap<string, string>;
}

/** One distinct engine error and how often it happened. */
export interface StageError {
  /** The error's message. */
  readonly message: string;
  /** How many batches failed with it. */
  readonly count: number;
}

/** What {@linkcode InferenceStage.stats} returns. */
export interface InferenceStats {
  /** Batches scored. */
  readonly batches: number;
  /** Frames scored. */
  readonly frames: number;
  /** `frames / batches`; 0 before the first batch. */
  readonly meanBatchSize: number;
  /** Batches dropped because the engine (or the frames' conversion) failed. */
  readonly failedBatches: number;
  /** Frames in failed batches. */
  readonly droppedFrames: number;
  /** Engine milliseconds per batch (recent window) with totals since start. */
  readonly batchMs: PercentileSnapshot;
  /** Distinct failures, oldest first; past 32 distinct messages, new ones count as `(other errors)`. */
  readonly errors: readonly StageError[];
  /** The default model's version (the one the next batch uses for unrouted cameras). */
  readonly modelVersion: string;
  /** Model key -> the version serving that key's cameras. */
  readonly models: Readonly<Record<string, string>>;
  /** The precision the default engine serves (`engine.precision`, absent = fp32). */
  readonly modelPrecision: Precision;
  /** Model key -> the precision its engine serves. */
  readonly precisions: Readonly<Record<string, Precision>>;
  /** How many times `setModel()` swapped the model. */
  readonly swaps: number;
}

interface Slot {
  readonly engine: InferenceEngine;
  readonly model: ModelInfo;
}

const MAX_DISTINCT_ERRORS = 32;
const OTHER_ERRORS = "(other errors)";

function isPowerOfTen(n: number): boolean {
  while (n >= 10 && n % 10 === 0) n /= 10;
  return n === 1;
}

/**
 * A `TransformStream<Frame[], ScoredFrame>` around an inference engine, with an atomic
 * model swap between batches. Use it with `pipeThrough`.
 */
export class InferenceStage implements ReadableWritablePair<ScoredFrame, Frame[]> {
  /** Scored frames, one per input frame, in batch order. */
  readonly readable: ReadableStream<ScoredFrame>;
  /** Batches of frames (RGB24 at the model's input size). */
  readonly writable: WritableStream<Frame[]>;
  #slot: Slot;
  #keyed = new Map<string, Slot>();
  #routes: ReadonlyMap<string, string>;
  #policy: ThresholdPolicy;
  #logger: Logger | undefined;
  #now: () => number;
  #latency: RollingPercentiles;
  #inFlight: Promise<void> | undefined;
  #abort = new AbortController();
  #batches = 0;
  #frames = 0;
  #failedBatches = 0;
  #droppedFrames = 0;
  #swaps = 0;
  #errors = new Map<string, number>();
  #toldNoThresholds = new Set<string>();
  /** One batch is packed at a time (a run finishes before the next is packed). */
  #packer = new BatchPacker();

  /**
   * Makes the stage around an engine.
   *
   * @throws {RangeError} when `latencyWindow` or `outputHighWaterMark` is not a positive
   * integer.
   */
  constructor(options: InferenceStageOptions) {
    const hwm = assertPositiveInteger(
      options.outputHighWaterMark ?? 64,
      "outputHighWaterMark",
      "Cannot make inference stage",
    );
    this.#slot = { engine: options.engine, model: options.model };
    this.#routes = options.routes ?? new Map();
    this.#policy = options.threshold;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#latency = new RollingPercentiles(options.latencyWindow ?? 1024);
    const stream = new TransformStream<Frame[], ScoredFrame>(
      {
        transform: (frames, controller) => this.#run(frames, controller),
        cancel: (reason) => this.#abort.abort(reason),
      },
      { highWaterMark: 1 },
      { highWaterMark: hwm },
    );
    this.readable = stream.readable;
    this.writable = stream.writable;
  }

  /** The model the next batch will use. */
  get model(): ModelInfo {
    return this.#slot.model;
  }

  /** The default engine (unrouted cameras). */
  get engine(): InferenceEngine {
    return this.#slot.engine;
  }

  /** Every engine the stage holds (default and keyed), each once. */
  get engines(): InferenceEngine[] {
    return [...new Set([this.#slot.engine, ...[...this.#keyed.values()].map((s) => s.engine)])];
  }

  /** The model that scores `camera`'s frames. */
  modelFor(camera: string): ModelInfo {
    return this.#slotFor(camera).model;
  }

  /** The precision of the engine that scores `camera`'s frames (absent there = fp32). */
  precisionFor(camera: string): Precision {
    return this.#slotFor(camera).engine.precision ?? "fp32";
  }

  /** Whether `key` has a model of its own. */
  hasModel(key: string): boolean {
    return this.#keyed.has(key);
  }

  /**
   * Swaps the engine and model atomically, of `key`'s cameras (see `routes`) or, without a
   * key, the default one: the batch in flight (if any) finishes with the old ones, every
   * later batch uses the new ones.
   *
   * @returns the previous engine of that key (none the first time a key gets a model), once
   * no batch is using it, so that the caller can dispose it (unless it is the same engine).
   */
  setModel(engine: InferenceEngine, model: ModelInfo): Promise<InferenceEngine>;
  setModel(
    engine: InferenceEngine,
    model: ModelInfo,
    key: string,
  ): Promise<InferenceEngine | undefined>;
  async setModel(
    engine: InferenceEngine,
    model: ModelInfo,
    key?: string,
  ): Promise<InferenceEngine | undefined> {
    let previous: Slot | undefined;
    if (key === undefined) {
      previous = this.#slot;
      this.#slot = { engine, model };
    } else {
      previous = this.#keyed.get(key);
      this.#keyed.set(key, { engine, model });
    }
    this.#swaps++;
    this.#logger?.info("model swapped", {
      ...(key !== undefined ? { key } : {}),
      from: previous?.model.version ?? "(none)",
      to: model.version,
      engine: engine.description,
      precision: engine.precision ?? "fp32",
    });
    await this.#inFlight;
    return previous?.engine;
  }

  /** Counters, latency percentiles and failures. */
  stats(): InferenceStats {
    return {
      batches: this.#batches,
      frames: this.#frames,
      meanBatchSize: this.#batches === 0 ? 0 : this.#frames / this.#batches,
      failedBatches: this.#failedBatches,
      droppedFrames: this.#droppedFrames,
      batchMs: this.#latency.snapshot(),
      errors: [...this.#errors].map(([message, count]) => ({ message, count })),
      modelVersion: this.#slot.model.version,
      models: Object.fromEntries([...this.#keyed].map(([k, v]) => [k, v.model.version])),
      modelPrecision: this.#slot.engine.precision ?? "fp32",
      precisions: Object.fromEntries(
        [...this.#keyed].map(([k, v]) => [k, v.engine.precision ?? "fp32"]),
      ),
      swaps: this.#swaps,
    };
  }

  async #run(
    frames: Frame[],
    controller: TransformStreamDefaultController<ScoredFrame>,
  ): Promise<void> {
    if (frames.length === 0) return;
    // Split by model (almost always one part); each part keeps its frames' batch indices.
    const parts = new Map<Slot, number[]>();
    for (let i = 0; i < frames.length; i++) {
      const slot = this.#slotFor(frames[i]!.camera);
      const part = parts.get(slot);
      if (part) part.push(i);
      else parts.set(slot, [i]);
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#inFlight = promise;
    try {
      const scored: (ScoredFrame | undefined)[] = new Array(frames.length);
      let ran = false;
      for (const [slot, indices] of parts) {
        const part = indices.map((i) => frames[i]!);
        try {
          const batch = this.#packer.pack(part);
          const t0 = performance.now();
          const out = await slot.engine.run(batch, { signal: this.#abort.signal });
          const ms = performance.now() - t0;
          const result = this.#score(part, out, slot, ms);
          indices.forEach((at, j) => scored[at] = result[j]);
          this.#frames += part.length;
          this.#latency.add(ms);
          ran = true;
        } catch (e) {
          if (this.#abort.signal.aborted) throw e;
          this.#fail(e, part.length);
        }
      }
      if (ran) this.#batches++;
      for (const s of scored) if (s !== undefined) controller.enqueue(s);
    } finally {
      this.#inFlight = undefined;
      resolve();
    }
  }

  #slotFor(camera: string): Slot {
    const key = this.#routes.get(camera);
    return (key !== undefined ? this.#keyed.get(key) : undefined) ?? this.#slot;
  }

  #score(frames: Frame[], out: InferenceOutput, slot: Slot, ms: number): ScoredFrame[] {
    const n = frames.length;
    if (out.anomalyMap.shape[0] !== n || out.predScore.data.length < n) {
      throw new RangeError(
        `Cannot read engine output: expected ${n} maps and scores, got maps of shape [${
          out.anomalyMap.shape.join(", ")
        }] and ${out.predScore.data.length} scores`,
      );
    }
    const { engine, model } = slot;
    if (
      engine.scoreKind === "raw" && this.#policy.policy === "model" &&
      model.thresholds === undefined && !this.#toldNoThresholds.has(model.version)
    ) {
      this.#toldNoThresholds.add(model.version);
      this.#logger?.warn("model has no thresholds: no frame will be called anomalous", {
        model: model.version,
      });
    }
    const scoredAt = this.#now();
    const result: ScoredFrame[] = [];
    for (let i = 0; i < n; i++) {
      const score = out.predScore.data[i]!;
      const label = out.predLabel?.[i];
      const judgement = judgeScore(score, {
        policy: this.#policy,
        scoreKind: engine.scoreKind,
        ...(model.thresholds ? { thresholds: model.thresholds } : {}),
        ...(label !== undefined ? { label: label === 1 } : {}),
      });
      const map = item(out.anomalyMap, i);
      result.push({
        frame: frames[i]!,
        score,
        ...judgement,
        map: { shape: map.shape, data: map.data.slice() },
        modelVersion: model.version,
        modelPrecision: engine.precision ?? "fp32",
        batchSize: n,
        inferenceMs: ms,
        scoredAt,
      });
    }
    return result;
  }

  #fail(e: unknown, frames: number): void {
    this.#failedBatches++;
    this.#droppedFrames += frames;
    let message = errorMessage(e);
    if (!this.#errors.has(message) && this.#errors.size >= MAX_DISTINCT_ERRORS) {
      message = OTHER_ERRORS;
    }
    const count = (this.#errors.get(message) ?? 0) + 1;
    this.#errors.set(message, count);
    if (isPowerOfTen(count)) {
      this.#logger?.error("batch dropped: inference failed", { error: message, frames, count });
    }
  }
}
