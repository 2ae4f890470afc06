/**
 * The retraining loop of one store key (a camera, or cameras sharing a model), composed from
 * the building blocks of this folder:
 *
 * 1. every scored frame goes to {@linkcode RetrainCoordinator.observe}: the
 *    {@linkcode FrameSelector} decides which are kept as normal, the kept ones are written to
 *    the {@linkcode FrameStore} and counted by the {@linkcode RetrainScheduler} (count and
 *    drift triggers look at the kept frames' scores);
 * 2. a trigger (or {@linkcode RetrainCoordinator.retrain}) exports the store's normal frames
 *    to a training folder, holding out the most recent `holdoutFraction` of them as
 *    validation frames (`training_data.ts`), and runs the trainer subprocess;
 * 3. the {@linkcode Promoter} adds the trained candidate to the registry, validates it
 *    against the serving model, then promotes it (a fresh engine goes to the injected `swap`
 *    hook: the pipeline passes `InferenceStage.setModel`) or refuses it with the reason.
 *
 * Each step is published as a {@linkcode RetrainEvent} (`src/core/retrain_event.ts`).
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
 * **Storage errors and backpressure** ({@linkcode StoreWriter}): `observe` never blocks; at
 * most `maxPendingWrites` writes run at once (a frame beyond is dropped and counted in
 * `status().droppedWrites`); a failing store (a full disk) never stops inspection: its error
 * is published (`storeError`) on the first failure, then at most once a minute.
 *
 * **Crash safety.** See `promotion.ts`: the registry first, the engine after.
 *
 * @example
 * ```ts
 * import { RetrainCoordinator, type RetrainCoordinatorOptions } from "./coordinator.ts";
 * import type { ScoredFrame } from "../core/frame.ts";
 *
 * type Settings = Pick<
 *   RetrainCoordinatorOptions,
 *   "store" | "registry" | "selector" | "triggers" | "margins" | "swap"
 * >;
 * async function learn(settings: Settings, frames: AsyncIterable<ScoredFrame>): Promise<void> {
 *   await using coordinator = new RetrainCoordinator({
 *     ...settings, key: "line-1", workDir: "out/retrain/line-1", bootstrapFrames: 50,
 *     train: { steps: 2000 }, publish: (event) => console.log(event.state),
 *   });
 *   for await (const scored of frames) coordinator.observe(scored);
 * }
 * ```
 *
 * @module
 */
import type { Frame, ScoredFrame } from "../core/frame.ts";
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type {
  ModelState,
  RetrainEvent,
  RetrainTrigger,
  TrainingProgress,
} from "../core/retrain_event.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";
import {
  FrameSelector,
  type FrameSelectorOptions,
  type FrameSelectorStats,
} from "./frame_select.ts";
import type { FrameLabel, FrameStore, FrameStoreStats, StoreResult } from "./frame_store.ts";
import type { ModelRegistry } from "./registry.ts";
import {
  type PreparedRun,
  type RetrainOutcome,
  RetrainScheduler,
  type SchedulerStatus,
  type SchedulerTrainOptions,
  type TrainingGate,
} from "./scheduler.ts";
import type { TrainProgress } from "../train/progress_event.ts";
import { retrainTrigger, type TriggerFired } from "./triggers.ts";
import type { PromotionMargins } from "./validate.ts";
import { type EngineFactory, Promoter, type SwapHook } from "./promotion.ts";
import type { Precision } from "../core/frame.ts";
import { BootstrapGate } from "./bootstrap_gate.ts";
import { NewScene } from "./new_scene.ts";
import { RecentFrames } from "./recent_frames.ts";
import { StoreWriter } from "./store_writer.ts";
import { leaveOutOddFrames, type TrainingRun, writeTrainingRun } from "./training_data.ts";

/** What {@linkcode RetrainCoordinator.retrain} and {@linkcode RetrainCoordinator.cancel} did. */
export type RetrainCommandResult = "started" | "pending" | "cancelled" | "idle" | "closed";

/** A lifecycle event as the coordinator's steps give it: `#emit` adds the rest. */
type EventInput = RetrainEvent extends infer E
  ? E extends RetrainEvent ? Omit<E, "key" | "at" | "storeError" | "trigger" | "triggerReason">
  : never
  : never;

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
  /** The frame selector's gates (`retrain.store`, resolved). */
  readonly selector: FrameSelectorOptions;
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
  /** The promotion margins (`retrain.promotion.margins`, resolved). */
  readonly margins: PromotionMargins;
  /** How many recent frames `mark` can reach. Default 32. */
  readonly markRing?: number;
  /** Store writes in flight before `observe` drops frames. Default 4. */
  readonly maxPendingWrites?: number;
  /** Engine factory (validation and swaps): see `PromoterOptions`. */
  readonly createEngine?: EngineFactory;
  /** The precision candidates are validated and served at: see `PromoterOptions`. */
  readonly precision?: Precision;
  /** Serves a promoted (or rolled-back-to) model: see `PromoterOptions`. */
  readonly swap?: SwapHook;
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
  /**
   * The lifecycle state: the last event's, or `collecting` while bootstrapping with no
   * event since the last run (`idle` at start with a model).
   */
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

/** The trainer's progress as published (without the ETA text, which is for people). */
function published(p: TrainProgress): TrainingProgress {
  const { eta: _eta, ...progress } = p;
  return progress;
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
  readonly #promoter: Promoter;
  readonly #now: () => number;
  readonly #boot: BootstrapGate;
  readonly #holdout: number;
  readonly #recent: RecentFrames;
  readonly #writer: StoreWriter;
  readonly #stop = new AbortController();
  readonly #onAbort = (): void => void this.close();
  readonly #scene: NewScene;
  #trigger: RetrainTrigger | undefined;
  #triggerReason: string | undefined;
  #state: ModelState;
  #lastEvent: RetrainEvent | undefined;
  #runs = 0;
  #run: TrainingRun | undefined;
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
    this.#boot = new BootstrapGate({
      needed: options.bootstrapFrames,
      intervalMs: options.bootstrapIntervalMs ?? 1000,
      retryMs: options.bootstrapRetryMs ?? 60_000,
    });
    this.#holdout = options.holdoutFraction ?? 0.2;
    this.#recent = new RecentFrames(options.markRing ?? 32);
    this.#writer = new StoreWriter(options.store, {
      ...(options.maxPendingWrites !== undefined ? { maxPending: options.maxPendingWrites } : {}),
      onError: (error) => this.#storeFailed(error),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      now: this.#now,
    });
    this.#scene = new NewScene(options.store, this.#writer, {
      window: options.triggers.drift?.window ?? 0,
      needed: options.driftFrames ?? this.#boot.needed,
    });
    if (!(this.#holdout > 0 && this.#holdout < 1)) {
      const bad = `holdoutFraction must be in (0, 1), got ${this.#holdout}`;
      throw new RangeError(`Cannot make a retrain coordinator: ${bad}`);
    }
    this.#promoter = new Promoter({
      registry: options.registry,
      store: options.store,
      margins: options.margins,
      ...(options.precision !== undefined ? { precision: options.precision } : {}),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      ...(options.createEngine !== undefined ? { createEngine: options.createEngine } : {}),
      ...(options.swap !== undefined ? { swap: options.swap } : {}),
    });
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
      onProgress: (progress) => this.#emit({ state: "training", progress: published(progress) }),
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
    this.#recent.push(scored.frame);
    if (this.bootstrapping) {
      this.#collect(scored.frame, scored.score);
      return;
    }
    for (const kept of this.#selector.offer(scored)) {
      this.#writer.write(kept.frame, kept.score);
      this.#scene.noteKept(kept.frame.capturedAt);
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
    this.#recent.push(frame);
    this.#collect(frame, Number.NaN);
  }

  #collect(frame: Frame, score: number): void {
    if (!this.#boot.admit(frame.capturedAt)) return;
    this.#writer.write(frame, score, () => this.#afterBootstrapFrame());
  }

  /**
   * An operator's mark: stores the frame of sequence number `seq` (default: the latest) from
   * the last `markRing` frames with the label. A frame marked anomalous also keeps the
   * selector from collecting its neighbours.
   *
   * @returns the store's result; `{ ok: false }` when the frame is no longer held.
   */
  mark(label: FrameLabel, seq?: number): Promise<StoreResult> {
    const frame = this.#recent.find(seq);
    if (frame instanceof RangeError) return Promise.resolve({ ok: false, error: frame });
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
   * Serves the previous version again ({@linkcode Promoter.rollback}). Waits for a
   * validation or promotion in progress first.
   *
   * @returns the version now serving.
   * @throws as {@linkcode Promoter.rollback} (a `failed` event is published first).
   */
  rollback(reason = "rollback requested"): Promise<string> {
    return this.#serial(async () => {
      this.#trigger = "command";
      this.#triggerReason = reason;
      try {
        const { version, from } = await this.#promoter.rollback(reason);
        this.#emit({
          state: "rolled_back",
          serving: version,
          ...(from !== undefined ? { from } : {}),
          decisionReason: reason,
        });
        this.#scheduler.notePromotion();
        return version;
      } catch (e) {
        this.#emit({ state: "failed", decisionReason: `Cannot roll back: ${errorMessage(e)}` });
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
      droppedWrites: this.#writer.dropped,
      scheduler: this.#scheduler.status(),
      selector: this.#selector.stats(),
      store: this.#o.store.stats(),
    };
  }

  /** Resolves when no training, validation or store write is in progress. */
  async idle(): Promise<void> {
    await this.#scheduler.idle();
    await this.#writer.settled();
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
      await this.#writer.settled();
      await this.#ops.catch(() => {});
    })();
    return this.#closing;
  }

  /** Same as {@linkcode RetrainCoordinator.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ----

  #emit(event: EventInput): void {
    const serving = this.#o.registry.currentId;
    const base = {
      key: this.#o.key,
      at: this.#now(),
      ...(serving !== undefined ? { serving } : {}),
      ...(this.#writer.error !== undefined ? { storeError: this.#writer.error } : {}),
    };
    const run = {
      trigger: this.#trigger ?? "command",
      ...(this.#triggerReason !== undefined ? { triggerReason: this.#triggerReason } : {}),
    };
    this.#publish(
      event.state === "idle"
        ? { ...base, ...event }
        : event.state === "failed"
        ? { ...base, ...(this.#trigger !== undefined ? run : {}), ...event }
        : { ...base, ...run, ...event },
    );
  }

  #publish(event: RetrainEvent): void {
    this.#state = event.state;
    this.#lastEvent = event;
    try {
      this.#o.publish?.(event);
    } catch (e) {
      this.#o.logger?.warn("retrain publish failed", { error: errorMessage(e) });
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#ops.then(fn, fn);
    this.#ops = run.catch(() => {});
    return run;
  }

  /**
   * The store fails (told by the writer: first failure, then at most once a minute):
   * publishes the step in progress again (collecting, training, validating), else idle,
   * with the error.
   */
  #storeFailed(storeError: string): void {
    const last = this.#lastEvent;
    const state = this.#state;
    if (
      (last?.state === "collecting" || last?.state === "training" ||
        last?.state === "validating") && last.state === state
    ) {
      const serving = this.#o.registry.currentId;
      const { serving: _, ...rest } = last;
      this.#publish({
        ...rest,
        at: this.#now(),
        storeError,
        ...(serving !== undefined ? { serving } : {}),
      });
    } else if (state === "collecting") {
      this.#bootstrapCollecting(this.#o.store.list({ label: "normal" }).length);
    } else {
      this.#emit({ state: "idle", cancelled: false });
    }
  }

  #onStart(trigger: TriggerFired): void {
    this.#trigger = this.bootstrapping ? "bootstrap" : retrainTrigger(trigger);
    // The bootstrap starts through the scheduler's command: not an operator's.
    this.#triggerReason = this.bootstrapping
      ? trigger.reason.replace(/^manual: /, "")
      : trigger.reason;
    if (trigger.kind === "drift" && !this.bootstrapping) {
      // The frames of the drifted window are the first frames of the new scene.
      this.#scene.begin(this.#now());
      this.#emitNewScene(trigger, this.#scene.frames().length);
      return;
    }
    this.#emit({ state: "training" });
  }

  #emitNewScene(trigger: TriggerFired, collected: number): void {
    this.#emit({
      state: "collecting",
      note: `${trigger.reason}; learning the new scene from frames captured since then`,
      collected,
      needed: this.#scene.needed,
    });
  }

  #bootstrapCollecting(collected: number): void {
    this.#trigger = "bootstrap";
    this.#emit({ state: "collecting", collected, needed: this.#boot.needed });
  }

  #afterBootstrapFrame(): void {
    if (!this.bootstrapping || this.#stop.signal.aborted) return;
    const collected = this.#o.store.list({ label: "normal" }).length;
    if (this.#boot.started) return;
    this.#bootstrapCollecting(collected);
    if (this.#boot.start(collected, this.#now())) {
      this.#scheduler.command("retrain", `bootstrap: ${collected} normal frames collected`);
    }
  }

  async #prepareData(trigger: TriggerFired, signal: AbortSignal): Promise<PreparedRun> {
    const store = this.#o.store;
    const drift = trigger.kind === "drift" && this.#scene.active;
    let frames = drift
      ? await this.#scene.collect(signal, (n) => this.#emitNewScene(trigger, n))
      : store.list({ label: "normal" });
    // Frames no model judged (the first model, a new scene): leave out the odd ones out.
    let decoded: ReadonlyMap<string, Frame> | undefined;
    if (this.bootstrapping || drift) {
      const kept = await leaveOutOddFrames(store, frames, {
        signal,
        ...(this.#o.logger !== undefined ? { logger: this.#o.logger } : {}),
      });
      frames = [...kept.frames];
      decoded = kept.decoded;
      if (drift || kept.note !== undefined) {
        this.#emit({ state: "training", ...(kept.note !== undefined ? { note: kept.note } : {}) });
      }
    }
    const run = await writeTrainingRun(store, frames, {
      workDir: this.#o.workDir,
      run: ++this.#runs,
      holdoutFraction: this.#holdout,
      ...(decoded !== undefined ? { decoded } : {}),
      signal,
    });
    this.#run = run;
    return { dataDir: run.dataDir, outDir: run.outDir };
  }

  async #onResult(outcome: RetrainOutcome): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    this.#scene.end();
    try {
      const result = outcome.result;
      if (outcome.cancelled) {
        this.#emit({ state: "idle", cancelled: true });
      } else if (outcome.error !== undefined || result === undefined || run === undefined) {
        this.#emit({
          state: "failed",
          decisionReason: outcome.error ?? "Cannot train: no result",
        });
      } else {
        await this.#serial(() => this.#validate(result.outDir, run, outcome.trigger));
      }
    } finally {
      if (run !== undefined) await Deno.remove(run.dir, { recursive: true }).catch(() => {});
      if (this.bootstrapping) {
        this.#boot.ended(this.#now());
        if (this.#state !== "failed") this.#state = "collecting";
      }
    }
  }

  async #validate(outDir: string, run: TrainingRun, trigger: TriggerFired): Promise<void> {
    try {
      const outcome = await this.#promoter.validate(outDir, run.holdout, {
        reason: this.#triggerReason ?? trigger.reason,
        onCandidate: (candidate) => this.#emit({ state: "validating", candidate }),
        signal: this.#stop.signal,
      });
      if (outcome.kind === "refused") {
        this.#emit({
          state: "refused",
          candidate: outcome.candidate,
          decisionReason: outcome.reason,
          ...(outcome.validation !== undefined ? { validation: outcome.validation } : {}),
        });
        return;
      }
      this.#scheduler.notePromotion();
      this.#scene.forget();
      this.#emit({
        state: "promoted",
        serving: outcome.version,
        ...(outcome.from !== undefined ? { from: outcome.from } : {}),
        decisionReason: outcome.reason,
        validation: outcome.validation,
      });
    } catch (e) {
      this.#emit({
        state: "failed",
        decisionReason: `Cannot validate the candidate: ${errorMessage(e)}`,
      });
    }
  }
}
