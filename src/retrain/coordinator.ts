/**
 * The retraining loop of one store key (a camera, or cameras sharing a model), composed from
 * the building blocks of this folder:
 *
 * 1. every scored frame goes to {@linkcode RetrainCoordinator.observe}: the
 *    {@linkcode FrameSelector} decides which are kept as normal, the kept ones are written to
 *    the {@linkcode FrameStore} and counted by the {@linkcode RetrainScheduler} (count and
 *    drift triggers look at the kept frames' scores);
 * 2. a trigger (or {@linkcode RetrainCoordinator.retrain}) exports the store's normal frames
 *    to a training folder as PNG files, holding out the most recent `holdoutFraction` of them
 *    as validation frames, and runs the trainer subprocess ({@linkcode TrainProcess});
 * 3. a trained candidate is added to the {@linkcode ModelRegistry}, validated against the
 *    serving model on the held-out normal frames and the frames an operator marked anomalous
 *    ({@linkcode validateCandidate}), then promoted or refused with the reason;
 * 4. a promotion hands a fresh engine to the injected `swap` hook (the pipeline passes
 *    `InferenceStage.setModel` and disposes the engine it gets back).
 *
 * **Bootstrap.** While the registry has no current model, scores mean nothing (the pipeline
 * serves a placeholder), so every observed frame counts as normal: frames are stored (at most
 * one per `bootstrapIntervalMs` of capture time) without the selector's gates until
 * `bootstrapFrames` normal frames are in the store, then a training starts; its candidate
 * is promoted when validation can score it (there is nothing to compare it to). A failed or
 * cancelled bootstrap training is retried on a later frame, at least `bootstrapRetryMs` later.
 * A bootstrap promotion whose `swap` fails cannot be rolled back (there is nothing before it):
 * the registry names the new version while the pipeline keeps its placeholder.
 *
 * **Drift.** When the drift trigger fires, the scene has changed: the frames of the drifted
 * window are the first frames of the new scene. The run first collects (`collecting`, not
 * bootstrap) until `driftFrames` normal frames captured since the first frame of that window
 * are in the store, then trains on those frames only (older frames show the old scene).
 * Other triggers train on the whole store. After a promotion the drift factor's baseline is
 * taken again from the first window the new model scores.
 *
 * **Storage errors.** A store write that fails (a full disk) never stops inspection: it is
 * counted by the store, logged and published (`storeError` on the next event, one event on
 * the first failure and then at most one a minute) until a write succeeds again.
 *
 * **Crash safety.** The registry switches its `current` pointer atomically and only after
 * the version loaded, so a crash at any point leaves the serving model intact; the
 * coordinator promotes in the registry first and swaps the engine after; a failing swap
 * rolls the registry back.
 *
 * **Backpressure.** `observe` never blocks: store writes run in the background, at most
 * `maxPendingWrites` at once; a frame beyond that is dropped and counted
 * (`status().droppedWrites`).
 *
 * @example
 * ```ts
 * await using coordinator = new RetrainCoordinator({
 *   key: "line-1", store, registry, workDir: "out/retrain/line-1",
 *   triggers: pipeline.retrain.triggers, bootstrapFrames: 50, train: { steps: 2000 },
 *   swap: async (engine, model) => await (await stage.setModel(engine, model))[Symbol.asyncDispose](),
 *   publish: (event) => logger.info("model", { ...event }),
 * });
 * for await (const scored of frames) coordinator.observe(scored);
 * ```
 *
 * @module
 */
import { join } from "node:path";
import type { Frame, ScoredFrame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";
import type { ModelState, RetrainTrigger } from "../core/status.ts";
import type { Tensor } from "../core/tensor.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { createOnnxEngine } from "../infer/onnx/engine.ts";
import { imageToTensor } from "../image/decode.ts";
import type { EfficientAdModel, Thresholds } from "../model/model.ts";
import { readProjectModel } from "../model/project_format.ts";
import {
  FrameSelector,
  type FrameSelectorOptions,
  type FrameSelectorStats,
} from "./frame_select.ts";
import { consensusFilter } from "./consensus.ts";
import type {
  FrameLabel,
  FrameStore,
  FrameStoreStats,
  StoredFrame,
  StoreResult,
} from "./frame_store.ts";
import type { ModelRegistry } from "./registry.ts";
import {
  type PreparedRun,
  type RetrainOutcome,
  RetrainScheduler,
  type SchedulerStatus,
  type SchedulerTrainOptions,
  type TrainingGate,
} from "./scheduler.ts";
import type { TrainProgress } from "./train_process.ts";
import type { TriggerFired } from "./triggers.ts";
import {
  type ModelFigures,
  type PromotionMargins,
  type ResolvedPromotionMargins,
  validateCandidate,
} from "./validate.ts";

/** The validation figures of a decision, as published. */
export interface ValidationFigures {
  /** The candidate's figures. */
  readonly candidate: ModelFigures;
  /** The serving model's figures, when there was one. */
  readonly current?: ModelFigures;
  /** The margins applied. */
  readonly margins: ResolvedPromotionMargins;
}

/** One lifecycle event, given to {@linkcode RetrainCoordinatorOptions.publish}. */
export interface RetrainEvent {
  /** The store key. */
  readonly key: string;
  /** The state entered. */
  readonly state: ModelState;
  /** Epoch milliseconds. */
  readonly at: number;
  /** Why, in words: the trigger, the decision, the error. */
  readonly reason?: string;
  /** What started the training this event belongs to. */
  readonly trigger?: RetrainTrigger;
  /** That trigger in words (also after the decision, whose words are `reason`). */
  readonly triggerReason?: string;
  /** The version serving when the event was made (none while bootstrapping). */
  readonly serving?: string;
  /** The frame store's last write error (a full disk, say), while writes keep failing. */
  readonly storeError?: string;
  /** `collecting`: normal frames in the store, and how many are needed. */
  readonly collected?: number;
  /** `collecting`: the normal frames the first training needs. */
  readonly needed?: number;
  /** `training`: the trainer's last progress. */
  readonly progress?: TrainProgress;
  /** The version concerned: the candidate, or the one serving after a rollback or promotion. */
  readonly version?: string;
  /** The version that served before a promotion or rollback. */
  readonly from?: string;
  /** `promoted` / `refused`: the figures of both models. */
  readonly validation?: ValidationFigures;
  /** `idle` after a cancelled training. */
  readonly cancelled?: boolean;
}

/**
 * The model an engine serves, as handed to `swap`: the same shape as the inference stage's
 * `ModelInfo`, so `InferenceStage.setModel` fits (this folder does not import `src/batch`).
 */
export interface ServedModel {
  /** The registry's version id. */
  readonly version: string;
  /** The model's thresholds. */
  readonly thresholds?: Thresholds;
}

/** What {@linkcode RetrainCoordinator.retrain} and {@linkcode RetrainCoordinator.cancel} did. */
export type RetrainCommandResult = "started" | "pending" | "cancelled" | "idle" | "closed";

/** Makes an engine for a model (validation and swaps). */
export type EngineFactory = (model: EfficientAdModel) => Promise<InferenceEngine>;

/** Options of {@linkcode RetrainCoordinator}. */
export interface RetrainCoordinatorOptions {
  /** The store key (a camera, or a shared model's name), carried in every event. */
  readonly key: string;
  /** The key's frame store, opened by the caller (who closes it after the coordinator). */
  readonly store: FrameStore;
  /** The key's model registry, opened by the caller. */
  readonly registry: ModelRegistry;
  /** Where training folders are written (`<workDir>/run-<n>/{data,model}`); owned. */
  readonly workDir: string;
  /** The frame selector's gates. */
  readonly selector?: FrameSelectorOptions;
  /** The triggers, as the pipeline file resolved them (the drift window included). */
  readonly triggers: ResolvedRetrainTriggers;
  /** The trainer (command, steps, env, nice, grace). */
  readonly train?: SchedulerTrainOptions;
  /** How often the scheduler's timer evaluates triggers. Default 30000 ms. */
  readonly checkEveryMs?: number;
  /** Normal frames collected before the first training (`retrain.bootstrap.frames`). */
  readonly bootstrapFrames: number;
  /**
   * Frames of the new scene collected after a drift trigger before training (see the module
   * doc). Default `bootstrapFrames`.
   */
  readonly driftFrames?: number;
  /** Shared by the coordinators of one service: one training at a time. */
  readonly gate?: TrainingGate;
  /** Least capture-time gap between frames stored while bootstrapping. Default 1000 ms. */
  readonly bootstrapIntervalMs?: number;
  /** After a failed bootstrap training, the least time before the next one. Default 60000 ms. */
  readonly bootstrapRetryMs?: number;
  /** Share (0..1) of the most recent normal frames held out for validation. Default 0.2. */
  readonly holdoutFraction?: number;
  /** The promotion margins. */
  readonly margins?: PromotionMargins;
  /** How many recent frames `mark` can reach. Default 32. */
  readonly markRing?: number;
  /** Store writes in flight before `observe` drops frames. Default 4. */
  readonly maxPendingWrites?: number;
  /** Engine factory. Default {@linkcode createOnnxEngine} with its defaults. */
  readonly createEngine?: EngineFactory;
  /**
   * Serves a promoted (or rolled-back-to) model; takes ownership of `engine`. Without it
   * the engine is disposed at once (the registry still records the change).
   */
  readonly swap?: (engine: InferenceEngine, model: ServedModel) => void | Promise<void>;
  /** Receives every lifecycle event; exceptions are logged and ignored. */
  readonly publish?: (event: RetrainEvent) => void;
  /** Receives warnings (failed writes, failing hooks) and the scheduler's lines. */
  readonly logger?: Logger;
  /** The clock (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
  /** Aborting it disposes of the coordinator. */
  readonly signal?: AbortSignal;
}

/** What {@linkcode RetrainCoordinator.status} returns. */
export interface RetrainCoordinatorStatus {
  /** The store key. */
  readonly key: string;
  /** The state of the last event (`collecting` or `idle` at start). */
  readonly state: ModelState;
  /** The last event published. */
  readonly lastEvent?: RetrainEvent;
  /** The version serving (the registry's current), if any. */
  readonly currentVersion?: string;
  /** The rollback target, if any. */
  readonly previousVersion?: string;
  /** Whether the coordinator is collecting its first frames. */
  readonly bootstrapping: boolean;
  /** Frames dropped because too many store writes were in flight. */
  readonly droppedWrites: number;
  /** The scheduler: running training, trigger, progress, counters. */
  readonly scheduler: SchedulerStatus;
  /** The frame selector's counters. */
  readonly selector: FrameSelectorStats;
  /** The frame store's sizes and counters. */
  readonly store: FrameStoreStats;
}

interface Run {
  readonly dir: string;
  readonly holdout: readonly Frame[];
}

const STORE_ERROR_REPEAT_MS = 60_000;

function triggerKind(trigger: TriggerFired): RetrainTrigger {
  switch (trigger.kind) {
    case "drift":
      return "drift";
    case "count":
      return "count";
    case "daily":
    case "interval":
      return "schedule";
    default:
      return "command";
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A frame as a 1 x 3 x H x W tensor in [0, 1]. */
function frameTensor(frame: Frame): Tensor {
  return imageToTensor({ width: frame.width, height: frame.height, data: frame.rgb });
}

async function disposeQuietly(engine: InferenceEngine): Promise<void> {
  try {
    await engine[Symbol.asyncDispose]();
  } catch {
    // a failing release must not hide the outcome
  }
}

/**
 * Runs collection, training, validation, promotion and rollback for one store key; see the
 * module documentation. Implements `AsyncDisposable`: disposing cancels a running training,
 * waits for it and for the store writes in flight; the store and the registry stay open.
 */
export class RetrainCoordinator implements AsyncDisposable {
  readonly #o: RetrainCoordinatorOptions;
  readonly #selector: FrameSelector;
  readonly #scheduler: RetrainScheduler;
  readonly #now: () => number;
  readonly #needed: number;
  readonly #bootstrapIntervalMs: number;
  readonly #holdout: number;
  readonly #ringSize: number;
  readonly #maxWrites: number;
  readonly #createEngine: EngineFactory;
  readonly #stop = new AbortController();
  readonly #onAbort = (): void => void this.close();
  readonly #writes = new Set<Promise<unknown>>();
  readonly #driftFrames: number;
  readonly #driftWindow: number;
  /** Capture times of the last kept frames (the drift window's frames). */
  #keptAt: number[] = [];
  /** While a drift run collects the new scene: frames captured at or after this time. */
  #driftSince: number | undefined;
  /** Woken after each stored frame (a drift run waits on them). */
  #onStored = new Set<() => void>();
  #storeError: string | undefined;
  #storeErrorToldAt = -Infinity;
  #trigger: RetrainTrigger | undefined;
  #triggerReason: string | undefined;
  #ring: Frame[] = [];
  #state: ModelState;
  #lastEvent: RetrainEvent | undefined;
  #droppedWrites = 0;
  #lastBootstrapAt = -Infinity;
  #bootstrapFired = false;
  #bootstrapRetryAt = -Infinity;
  #runs = 0;
  #run: Run | undefined;
  #ops: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;

  /**
   * Makes the coordinator and starts its scheduler's timer.
   *
   * @throws {RangeError} on a bad count or fraction, or as {@linkcode FrameSelector} and
   * {@linkcode RetrainScheduler}.
   */
  constructor(options: RetrainCoordinatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#needed = options.bootstrapFrames;
    this.#bootstrapIntervalMs = options.bootstrapIntervalMs ?? 1000;
    this.#holdout = options.holdoutFraction ?? 0.2;
    this.#ringSize = options.markRing ?? 32;
    this.#maxWrites = options.maxPendingWrites ?? 4;
    this.#createEngine = options.createEngine ?? ((m) => createOnnxEngine(m));
    this.#driftFrames = options.driftFrames ?? this.#needed;
    this.#driftWindow = options.triggers.drift?.window ?? 0;
    const positive = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Cannot make a retrain coordinator: ${name} must be >= 1, got ${v}`);
      }
    };
    positive("bootstrapFrames", this.#needed);
    positive("driftFrames", this.#driftFrames);
    positive("markRing", this.#ringSize);
    positive("maxPendingWrites", this.#maxWrites);
    if (!(this.#holdout > 0 && this.#holdout < 1)) {
      throw new RangeError(
        `Cannot make a retrain coordinator: holdoutFraction must be in (0, 1), got ${this.#holdout}`,
      );
    }
    this.#selector = new FrameSelector({ ...options.selector, now: this.#now });
    this.#scheduler = new RetrainScheduler({
      triggers: options.triggers,
      ...(options.train !== undefined ? { train: options.train } : {}),
      ...(options.checkEveryMs !== undefined ? { checkEveryMs: options.checkEveryMs } : {}),
      now: this.#now,
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      ...(options.gate !== undefined ? { gate: options.gate } : {}),
      prepareData: (trigger, signal) => this.#prepareData(trigger, signal),
      onStart: (trigger) => this.#onStart(trigger),
      onProgress: (progress) =>
        this.#emit({
          state: "training",
          progress,
          reason: this.#scheduler.status().trigger?.reason ?? "",
        }),
      onResult: (outcome) => this.#onResult(outcome),
    });
    this.#state = this.bootstrapping ? "collecting" : "idle";
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (options.signal?.aborted) void this.close();
  }

  /** Whether there is no serving model yet (every frame counts as normal). */
  get bootstrapping(): boolean {
    return this.#o.registry.currentId === undefined;
  }

  /**
   * Takes one scored frame of this key: remembers it for `mark`, and stores it when it is
   * kept as normal (see the module doc). Never blocks, never throws for a well-formed frame.
   */
  observe(scored: ScoredFrame): void {
    if (this.#stop.signal.aborted) return;
    this.#ring.push(scored.frame);
    if (this.#ring.length > this.#ringSize) this.#ring.shift();
    if (this.bootstrapping) {
      this.#collect(scored.frame, scored.score);
      return;
    }
    for (const kept of this.#selector.offer(scored)) {
      this.#write(kept.frame, kept.score, () => {});
      this.#keptAt.push(kept.frame.capturedAt);
      if (this.#keptAt.length > this.#driftWindow) this.#keptAt.shift();
      this.#scheduler.noteNormalFrame(kept.score);
    }
  }

  /**
   * Takes one frame that was not scored because the key has no model yet (the pipeline
   * does not run inference for a learning camera): stored as normal, at most one per
   * `bootstrapIntervalMs` of capture time. Ignored once a model serves.
   */
  collect(frame: Frame): void {
    if (this.#stop.signal.aborted || !this.bootstrapping) return;
    this.#ring.push(frame);
    if (this.#ring.length > this.#ringSize) this.#ring.shift();
    this.#collect(frame, Number.NaN);
  }

  #collect(frame: Frame, score: number): void {
    const t = frame.capturedAt;
    if (t - this.#lastBootstrapAt < this.#bootstrapIntervalMs) return;
    this.#lastBootstrapAt = t;
    this.#write(frame, score, () => this.#afterBootstrapFrame());
  }

  /**
   * An operator's mark: stores the frame of sequence number `seq` (default: the latest) from
   * the last `markRing` frames with the label. A frame marked anomalous also keeps the
   * selector from collecting its neighbours.
   *
   * @returns the store's result; `{ ok: false }` when the frame is no longer held.
   */
  mark(label: FrameLabel, seq?: number): Promise<StoreResult> {
    const frame = seq === undefined ? this.#ring.at(-1) : this.#ring.findLast((f) => f.seq === seq);
    if (frame === undefined) {
      const which = seq === undefined ? "no frame seen yet" : `frame ${seq} is no longer held`;
      return Promise.resolve({ ok: false, error: new RangeError(`Cannot mark frame: ${which}`) });
    }
    if (label === "anomalous") this.#selector.noteAnomaly(frame.capturedAt);
    return this.#o.store.add(frame, { label, source: "operator" });
  }

  /** Starts a training now (or after the current one): what the scheduler did. */
  retrain(reason = "command"): RetrainCommandResult {
    return this.#scheduler.command("retrain", reason);
  }

  /** Cancels the running training (SIGTERM, then SIGKILL) and drops a pending one. */
  cancel(): RetrainCommandResult {
    return this.#scheduler.command("cancel");
  }

  /**
   * Serves the previous version again: the registry rolls back, then a fresh engine goes to
   * `swap`. Waits for a validation or promotion in progress first.
   *
   * @returns the version now serving.
   * @throws {RangeError} when there is no previous version; {@linkcode ModelFormatError}
   * when it does not load (nothing changes then); the engine factory's and `swap`'s errors
   * (the registry then names the rolled-back-to version; the pipeline still serves the
   * old engine).
   */
  rollback(reason = "rollback requested"): Promise<string> {
    return this.#serial(async () => {
      const registry = this.#o.registry;
      const from = registry.currentId;
      this.#trigger = "command";
      this.#triggerReason = reason;
      try {
        const id = await registry.rollback(reason);
        const model = await readProjectModel(registry.pathOf(id));
        await this.#serve(await this.#createEngine(model), id, model);
        this.#emit({ state: "rolled_back", version: id, ...(from ? { from } : {}), reason });
        this.#scheduler.notePromotion();
        return id;
      } catch (e) {
        this.#emit({ state: "failed", reason: `Cannot roll back: ${message(e)}` });
        throw e;
      }
    });
  }

  /** The current state, versions and the building blocks' counters. */
  status(): RetrainCoordinatorStatus {
    const registry = this.#o.registry;
    return {
      key: this.#o.key,
      state: this.#state,
      ...(this.#lastEvent ? { lastEvent: this.#lastEvent } : {}),
      ...(registry.currentId ? { currentVersion: registry.currentId } : {}),
      ...(registry.previousId ? { previousVersion: registry.previousId } : {}),
      bootstrapping: this.bootstrapping,
      droppedWrites: this.#droppedWrites,
      scheduler: this.#scheduler.status(),
      selector: this.#selector.stats(),
      store: this.#o.store.stats(),
    };
  }

  /** Resolves when no training, validation or store write is in progress. */
  async idle(): Promise<void> {
    await this.#scheduler.idle();
    await Promise.all(this.#writes);
    await this.#ops;
  }

  /**
   * Cancels a running training, waits for it, for a validation and for the store writes in
   * flight. Idempotent; never rejects. The store and registry stay open.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      this.#o.signal?.removeEventListener("abort", this.#onAbort);
      await this.#scheduler.close();
      await Promise.allSettled(this.#writes);
      await this.#ops.catch(() => {});
    })();
    return this.#closing;
  }

  /** Same as {@linkcode RetrainCoordinator.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ----

  #emit(event: Omit<RetrainEvent, "key" | "at">): void {
    const serving = this.#o.registry.currentId;
    const full: RetrainEvent = {
      key: this.#o.key,
      at: this.#now(),
      ...(this.#trigger !== undefined && event.state !== "idle" ? { trigger: this.#trigger } : {}),
      ...(this.#triggerReason !== undefined && event.state !== "idle"
        ? { triggerReason: this.#triggerReason }
        : {}),
      ...(serving !== undefined ? { serving } : {}),
      ...(this.#storeError !== undefined ? { storeError: this.#storeError } : {}),
      ...event,
    };
    this.#state = full.state;
    this.#lastEvent = full;
    try {
      this.#o.publish?.(full);
    } catch (e) {
      this.#o.logger?.warn("retrain publish failed", { error: message(e) });
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#ops.then(fn, fn);
    this.#ops = run.catch(() => {});
    return run;
  }

  #write(frame: Frame, score: number, then: () => void): void {
    if (this.#writes.size >= this.#maxWrites) {
      this.#droppedWrites++;
      return;
    }
    const p = this.#o.store.add(frame, Number.isFinite(score) ? { score } : {}).then((r) => {
      if (r.ok) {
        if (this.#storeError !== undefined) {
          this.#storeError = undefined;
          this.#o.logger?.info("the frame store takes frames again");
        }
        then();
        for (const wake of this.#onStored) wake();
      } else {
        this.#storeFailed(r.error);
      }
    });
    this.#writes.add(p);
    void p.finally(() => this.#writes.delete(p));
  }

  /**
   * A store write failed (a full disk, a read-only folder): inspection goes on; the error is
   * logged and published on the first failure and then at most once a minute while writes
   * keep failing.
   */
  #storeFailed(error: Error): void {
    this.#storeError = `Cannot store frames in ${this.#o.store.dir}: ${error.message}; ` +
      "inspection goes on, but no frames are collected for retraining until the store " +
      "can be written (free disk space or fix the folder's permissions)";
    const now = this.#now();
    if (now - this.#storeErrorToldAt < STORE_ERROR_REPEAT_MS) return;
    this.#storeErrorToldAt = now;
    this.#o.logger?.warn("retrain frame not stored", { error: this.#storeError });
    const last = this.#lastEvent;
    const ongoing = this.#state === "collecting" || this.#state === "training" ||
      this.#state === "validating";
    this.#emit({
      state: ongoing ? this.#state : "idle",
      ...(last?.reason !== undefined ? { reason: last.reason } : {}),
      ...(last?.collected !== undefined && last.needed !== undefined && this.#state === "collecting"
        ? { collected: last.collected, needed: last.needed }
        : {}),
      ...(last?.version !== undefined ? { version: last.version } : {}),
    });
  }

  #onStart(trigger: TriggerFired): void {
    this.#trigger = this.bootstrapping ? "bootstrap" : triggerKind(trigger);
    // The bootstrap starts through the scheduler's command: not an operator's.
    this.#triggerReason = this.bootstrapping
      ? trigger.reason.replace(/^manual: /, "")
      : trigger.reason;
    if (trigger.kind === "drift" && !this.bootstrapping) {
      // The frames of the drifted window are the first frames of the new scene.
      this.#driftSince = this.#keptAt[0] ?? this.#now();
      this.#emit({
        state: "collecting",
        reason: `${trigger.reason}; learning the new scene from frames captured since then`,
        collected: this.#sinceDrift().length,
        needed: this.#driftFrames,
      });
      return;
    }
    this.#emit({ state: "training", reason: this.#triggerReason });
  }

  #sinceDrift(): StoredFrame[] {
    return this.#o.store.list({
      label: "normal",
      ...(this.#driftSince !== undefined ? { since: this.#driftSince } : {}),
    });
  }

  /** Waits until the store holds `driftFrames` normal frames of the new scene. */
  async #collectNewScene(trigger: TriggerFired, signal: AbortSignal): Promise<StoredFrame[]> {
    let told = -1;
    for (;;) {
      signal.throwIfAborted();
      const frames = this.#sinceDrift();
      if (frames.length >= this.#driftFrames) return frames;
      if (frames.length !== told) {
        told = frames.length;
        this.#emit({
          state: "collecting",
          reason: `${trigger.reason}; learning the new scene from frames captured since then`,
          collected: frames.length,
          needed: this.#driftFrames,
        });
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#onStored.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.#onStored.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }

  #afterBootstrapFrame(): void {
    if (!this.bootstrapping || this.#stop.signal.aborted) return;
    const collected = this.#o.store.list({ label: "normal" }).length;
    if (this.#bootstrapFired) return;
    this.#emit({ state: "collecting", trigger: "bootstrap", collected, needed: this.#needed });
    if (collected >= this.#needed && this.#now() >= this.#bootstrapRetryAt) {
      this.#bootstrapFired = true;
      this.#scheduler.command("retrain", `bootstrap: ${collected} normal frames collected`);
    }
  }

  async #prepareData(trigger: TriggerFired, signal: AbortSignal): Promise<PreparedRun> {
    const store = this.#o.store;
    const drift = trigger.kind === "drift" && this.#driftSince !== undefined;
    let normal = drift
      ? await this.#collectNewScene(trigger, signal)
      : store.list({ label: "normal" });
    // Frames no model judged (the first model, a new scene): leave out the odd ones out.
    let note = "";
    // Frames already decoded (for the filter), reused for the held-out frames.
    const decoded = new Map<string, Frame>();
    if (this.bootstrapping || drift) {
      const read: Frame[] = [];
      for (const f of normal) {
        signal.throwIfAborted();
        const frame = await store.read(f.id);
        decoded.set(f.id, frame);
        read.push(frame);
      }
      const { dropped } = consensusFilter(read);
      if (dropped.length > 0) {
        const out = new Set(dropped);
        normal = normal.filter((_, i) => !out.has(i));
        note = `; left out ${dropped.length} of ${read.length} frames that differ from the ` +
          "others (possible defects)";
        this.#o.logger?.info("frames left out of the training", {
          dropped: dropped.length,
          of: read.length,
          ids: dropped.map((i) => read[i]!.seq).join(","),
        });
      }
    }
    if (drift || note !== "") {
      this.#emit({ state: "training", reason: (this.#triggerReason ?? trigger.reason) + note });
    }
    if (normal.length < 2) {
      throw new RangeError(
        `${normal.length} normal frames in the store, expected at least 2`,
      );
    }
    const held = Math.min(
      normal.length - 1,
      Math.max(1, Math.round(normal.length * this.#holdout)),
    );
    const train = normal.slice(0, normal.length - held);
    const holdout = normal.slice(normal.length - held);
    await Deno.remove(this.#o.workDir, { recursive: true }).catch(() => {});
    const dir = join(this.#o.workDir, `run-${++this.#runs}`);
    const dataDir = join(dir, "data");
    await Deno.mkdir(dataDir, { recursive: true });
    for (const f of train) {
      signal.throwIfAborted();
      await store.copyPng(f.id, join(dataDir, `${f.id}.png`));
    }
    const frames: Frame[] = [];
    for (const f of holdout) frames.push(decoded.get(f.id) ?? await store.read(f.id));
    this.#run = { dir, holdout: frames };
    return { dataDir, outDir: join(dir, "model") };
  }

  async #onResult(outcome: RetrainOutcome): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    this.#driftSince = undefined;
    try {
      const result = outcome.result;
      if (result?.cancelled === true || outcome.error === "Cannot train: cancelled") {
        this.#emit({ state: "idle", cancelled: true, reason: "training cancelled" });
      } else if (outcome.error !== undefined || result === undefined || run === undefined) {
        this.#emit({ state: "failed", reason: outcome.error ?? "Cannot train: no result" });
      } else {
        await this.#serial(() => this.#validate(result.outDir, run, outcome.trigger));
      }
    } finally {
      if (run !== undefined) await Deno.remove(run.dir, { recursive: true }).catch(() => {});
      if (this.bootstrapping) {
        this.#bootstrapFired = false;
        this.#bootstrapRetryAt = this.#now() + (this.#o.bootstrapRetryMs ?? 60_000);
        if (this.#state !== "failed") this.#state = "collecting";
      }
    }
  }

  async #validate(outDir: string, run: Run, trigger: TriggerFired): Promise<void> {
    const registry = this.#o.registry;
    const signal = this.#stop.signal;
    const engines: InferenceEngine[] = [];
    let handedOver: InferenceEngine | undefined;
    try {
      const id = await registry.addCandidate(outDir);
      this.#emit({ state: "validating", version: id, reason: trigger.reason });
      const candModel = await readProjectModel(registry.pathOf(id));
      if (candModel.thresholds === undefined) {
        throw new RangeError(`candidate ${id} has no thresholds`);
      }
      const candidate = await this.#createEngine(candModel);
      engines.push(candidate);
      const current = await registry.current();
      let currentSubject;
      if (current !== undefined) {
        if (current.model.thresholds === undefined) {
          throw new RangeError(`current model ${current.id} has no thresholds`);
        }
        const engine = await this.#createEngine(current.model);
        engines.push(engine);
        currentSubject = { engine, thresholds: current.model.thresholds };
      }
      const anomalous: Tensor[] = [];
      for (const f of this.#o.store.list({ label: "anomalous" })) {
        anomalous.push(frameTensor(await this.#o.store.read(f.id)));
      }
      const decision = await validateCandidate(
        { engine: candidate, thresholds: candModel.thresholds },
        currentSubject,
        {
          frames: { normal: run.holdout.map(frameTensor), anomalous },
          ...(this.#o.margins !== undefined ? { margins: this.#o.margins } : {}),
          signal,
        },
      );
      const validation: ValidationFigures = {
        candidate: decision.candidate,
        ...(decision.current ? { current: decision.current } : {}),
        margins: decision.margins,
      };
      if (!decision.promote) {
        this.#emit({ state: "refused", version: id, reason: decision.reason, validation });
        return;
      }
      signal.throwIfAborted();
      const from = registry.currentId;
      await registry.promote(id, `${this.#triggerReason ?? trigger.reason}; ${decision.reason}`);
      engines.splice(engines.indexOf(candidate), 1);
      handedOver = candidate;
      try {
        await this.#serve(candidate, id, candModel);
      } catch (e) {
        if (from !== undefined) await registry.rollback(`swap failed: ${message(e)}`);
        throw e;
      }
      this.#scheduler.notePromotion();
      this.#keptAt = [];
      this.#emit({
        state: "promoted",
        version: id,
        ...(from ? { from } : {}),
        reason: decision.reason,
        validation,
      });
    } catch (e) {
      this.#emit({ state: "failed", reason: `Cannot validate the candidate: ${message(e)}` });
    } finally {
      for (const engine of engines) {
        if (engine !== handedOver) await disposeQuietly(engine);
      }
    }
  }

  /** Hands `engine` to `swap` (or disposes it when there is none). */
  async #serve(engine: InferenceEngine, id: string, model: EfficientAdModel): Promise<void> {
    const info: ServedModel = {
      version: id,
      ...(model.thresholds !== undefined ? { thresholds: model.thresholds } : {}),
    };
    const swap = this.#o.swap;
    if (swap === undefined) {
      await engine[Symbol.asyncDispose]();
      return;
    }
    try {
      await swap(engine, info);
    } catch (e) {
      await disposeQuietly(engine);
      throw e;
    }
  }
}
