/**
 * The retraining scheduler of one camera (or model): evaluates the triggers on a timer and
 * on events, runs at most one training at a time as a low-priority subprocess, and reports
 * progress and results to injected hooks. The caller validates and promotes.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import { median } from "../core/percentiles.ts";
import type { TrainProgress } from "../train/progress_event.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";
import { RetrainTriggers, type TriggerFired, type TriggerState } from "./triggers.ts";
import {
  TrainProcess,
  type TrainProcessOptions,
  type TrainProcessResult,
} from "./train_process.ts";

/** Where a run reads its data and writes its model, from {@linkcode RetrainSchedulerOptions.prepareData}. */
export interface PreparedRun {
  /** The folder of normal images the trainer reads (`--data`). */
  readonly dataDir: string;
  /** Where the candidate model is written (`--out`). */
  readonly outDir: string;
}

/** A finished run as given to {@linkcode RetrainSchedulerOptions.onResult}. */
export interface RetrainOutcome {
  /** The trigger that started it. */
  readonly trigger: TriggerFired;
  /** The trainer's result; absent when preparing the data failed. */
  readonly result?: TrainProcessResult;
  /** Why the run failed (preparing or training), in one line; absent when it succeeded. */
  readonly error?: string;
  /** True when the run was cancelled (then `error`, if any, only says so). */
  readonly cancelled: boolean;
}

/** The trainer settings of the scheduler: {@linkcode TrainProcessOptions} less the per-run ones. */
export type SchedulerTrainOptions = Omit<
  TrainProcessOptions,
  "dataDir" | "outDir" | "onProgress" | "signal"
>;

/** The minimal logger the scheduler writes to (the project's `Logger` fits). */
export interface SchedulerLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * A lock of one: the schedulers of several store keys share one so that only one training
 * runs at a time on the device. Waiters are served in order; an aborted wait leaves the queue.
 */
export class TrainingGate {
  #held = false;
  #queue: (() => void)[] = [];

  /** Whether a run holds the gate. */
  get busy(): boolean {
    return this.#held;
  }

  /**
   * Waits for the gate; the returned disposable releases it.
   *
   * @throws the signal's reason when it aborts first.
   */
  async acquire(signal?: AbortSignal): Promise<Disposable> {
    signal?.throwIfAborted();
    if (this.#held) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          this.#queue = this.#queue.filter((w) => w !== wake);
          reject(signal?.reason);
        };
        this.#queue.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } else {
      this.#held = true;
    }
    let released = false;
    return {
      [Symbol.dispose]: () => {
        if (released) return;
        released = true;
        const next = this.#queue.shift();
        if (next) next();
        else this.#held = false;
      },
    };
  }
}

/** Options of {@linkcode RetrainScheduler}. */
export interface RetrainSchedulerOptions {
  /** The triggers, as the pipeline file resolved them. */
  readonly triggers: ResolvedRetrainTriggers;
  /** How to run the trainer (command, steps, extra args, nice, grace). Default: all defaults. */
  readonly train?: SchedulerTrainOptions;
  /**
   * Prepares a run (e.g. snapshots the frame store into a folder) and says where the data
   * is and where the model goes. A throw fails the run; the scheduler carries on.
   */
  readonly prepareData: (trigger: TriggerFired, signal: AbortSignal) => Promise<PreparedRun>;
  /** Called when a run starts. Exceptions are logged and ignored. */
  readonly onStart?: (trigger: TriggerFired) => void;
  /** Called with each progress event of the trainer. Exceptions are ignored. */
  readonly onProgress?: (progress: TrainProgress) => void;
  /**
   * Called when a run ended (ok, failed or cancelled); the caller validates and promotes
   * here. It is awaited: the next run cannot start before it settles. A throw is logged.
   */
  readonly onResult?: (outcome: RetrainOutcome) => void | Promise<void>;
  /** How often the timer evaluates the triggers. Default 30000 ms. */
  readonly checkEveryMs?: number;
  /** The clock (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Shared by the schedulers of one service so that only one training runs at a time:
   * a run holds it from preparing its data to its result. Default: this scheduler's own.
   */
  readonly gate?: TrainingGate;
  /** Where starts, ends and failures are logged. Default: nowhere. */
  readonly logger?: SchedulerLogger;
  /** Aborting it disposes of the scheduler (cancelling a running training). */
  readonly signal?: AbortSignal;
}

/** What the scheduler is doing, for `/status` and the MQTT model topic. */
export interface SchedulerStatus {
  /** `idle`, `preparing` (the data) or `training`. */
  readonly state: "idle" | "preparing" | "training";
  /** The trigger of the current run. */
  readonly trigger?: TriggerFired;
  /** The current run's last progress. */
  readonly progress?: TrainProgress;
  /** When the current run started (epoch ms). */
  readonly startedAt?: number;
  /** A trigger that fired during the current run; it runs next. */
  readonly pending?: TriggerFired;
  /** Triggers that fired during runs and were folded into a pending one. */
  readonly coalesced: number;
  /** Runs started. */
  readonly runs: number;
  /** Runs that failed (not counting cancelled ones). */
  readonly failures: number;
  /** The last run's result, if a trainer ran. */
  readonly lastResult?: TrainProcessResult;
  /** The last run's error, if it failed. */
  readonly lastError?: string;
  /** When the next time-based trigger is due (epoch ms). */
  readonly nextDueAt?: number;
  /** Normal frames since the last run started. */
  readonly newFrames: number;
  /** The drift factor's baseline (median raw score of normal frames), once known. */
  readonly driftBaseline?: number;
}

/**
 * Schedules retraining for one camera or model.
 *
 * **Triggers** are evaluated every `checkEveryMs` (interval, daily), on each
 * {@linkcode RetrainScheduler.noteNormalFrame} (count, drift) and on
 * {@linkcode RetrainScheduler.command} (`"retrain"`). The triggers' clocks count from the
 * scheduler's start until the first run.
 *
 * **Single flight.** At most one run (prepare, train, `onResult`) at a time. A trigger
 * that fires during a run is noted as pending (only the first is kept; later ones are
 * counted in `coalesced`) and starts one run right after; the data triggers (count,
 * drift) stay quiet during a run and for the cooldown after it.
 *
 * **Cancel.** `command("cancel")` drops the pending trigger and cancels the current run:
 * the trainer gets SIGTERM, then SIGKILL after the grace period; `onResult` sees
 * `cancelled`. A failing trainer or `prepareData` is reported through `onResult` and
 * `status().lastError`, and the scheduler keeps going.
 *
 * **Lifetime.** Starts its timer on construction. Disposing (or aborting `signal`) stops
 * the timer, cancels the running training and waits for it to end.
 *
 * @example
 * ```ts
 * import { RetrainScheduler } from "./scheduler.ts";
 *
 * async function schedule(
 *   snapshot: () => Promise<string>,
 *   nextDir: () => string,
 *   validateAndPromote: (dir: string) => Promise<void>,
 * ): Promise<void> {
 *   await using scheduler = new RetrainScheduler({
 *     triggers: {
 *       intervalMs: 6 * 3_600_000, dailyAt: [], timeZone: "utc", minNewFrames: 500,
 *       drift: { window: 100, bound: null, factor: 1.3 }, cooldownMs: 600_000,
 *     },
 *     train: { steps: 2000 },
 *     prepareData: async () => ({ dataDir: await snapshot(), outDir: nextDir() }),
 *     onResult: async ({ result }) => {
 *       if (result?.ok) await validateAndPromote(result.outDir);
 *     },
 *   });
 *   scheduler.noteNormalFrame(0.42);
 * }
 * ```
 */
export class RetrainScheduler implements AsyncDisposable {
  readonly #triggers: RetrainTriggers;
  readonly #options: RetrainSchedulerOptions;
  readonly #now: () => number;
  readonly #checkEveryMs: number;
  readonly #stop = new AbortController();
  readonly #onAbort = (): void => void this.close();

  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastStartAt: number;
  #lastEndAt: number | undefined;
  #newFrames = 0;
  #scores: number[] = [];
  readonly #gate = new TrainingGate();
  #promotedMedian: number | undefined;

  #state: SchedulerStatus["state"] = "idle";
  #trigger: TriggerFired | undefined;
  #startedAt: number | undefined;
  #progress: TrainProgress | undefined;
  #pending: TriggerFired | undefined;
  #coalesced = 0;
  #runs = 0;
  #failures = 0;
  #lastResult: TrainProcessResult | undefined;
  #lastError: string | undefined;
  #runAbort: AbortController | undefined;
  #running: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Validates the triggers and starts the timer.
   *
   * @throws {RangeError} on a bad `checkEveryMs`.
   */
  constructor(options: RetrainSchedulerOptions) {
    this.#triggers = new RetrainTriggers(options.triggers);
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#checkEveryMs = options.checkEveryMs ?? 30_000;
    if (!(this.#checkEveryMs > 0)) {
      throw new RangeError(
        `Cannot create scheduler: checkEveryMs must be positive, got ${this.#checkEveryMs}`,
      );
    }
    this.#lastStartAt = this.#now();
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (options.signal?.aborted) {
      void this.close();
      return;
    }
    this.#arm();
  }

  /**
   * Notes a frame judged normal, with its score: counts it for the count trigger, keeps
   * the score for drift, and evaluates the triggers. Non-finite scores only count.
   */
  noteNormalFrame(score: number): void {
    if (this.#stop.signal.aborted) return;
    this.#newFrames++;
    const window = this.#triggers.driftWindow;
    if (window > 0 && Number.isFinite(score)) {
      this.#scores.push(score);
      if (this.#scores.length > window) this.#scores.splice(0, this.#scores.length - window);
      // The drift factor's baseline: the first full window the serving model scored.
      if (this.#promotedMedian === undefined && this.#scores.length === window) {
        this.#promotedMedian = median(this.#scores);
      }
    }
    this.evaluate();
  }

  /**
   * Notes that a model was promoted. Forgets the recent scores (they came from the old
   * model) and the drift factor's baseline: `medianScore` when given (the new model's
   * median raw score on normal frames), else the median of the first drift window of normal
   * frames the new model scores.
   */
  notePromotion(medianScore?: number): void {
    this.#promotedMedian = medianScore !== undefined && Number.isFinite(medianScore)
      ? medianScore
      : undefined;
    this.#scores = [];
  }

  /**
   * An operator command: `"retrain"` starts a run now (or right after the current one);
   * `"cancel"` cancels the current run and drops a pending one. Returns what it did:
   * `"started"`, `"pending"`, `"cancelled"` or `"idle"` (nothing to cancel), or
   * `"closed"` after disposal.
   */
  command(
    cmd: "retrain" | "cancel",
    reason = "command",
  ): "started" | "pending" | "cancelled" | "idle" | "closed" {
    if (this.#stop.signal.aborted) return "closed";
    if (cmd === "cancel") {
      this.#pending = undefined;
      if (!this.#running) return "idle";
      this.#runAbort?.abort();
      return "cancelled";
    }
    return this.#fire({ kind: "manual", reason: `manual: ${reason}` });
  }

  /**
   * Evaluates the triggers now (the timer and `noteNormalFrame` call it); starts a run or
   * notes a pending one when one fires. Returns the trigger that fired, if any.
   */
  evaluate(): TriggerFired | undefined {
    if (this.#stop.signal.aborted) return undefined;
    const fired = this.#triggers.check(this.#triggerState(), this.#now());
    if (!fired) return undefined;
    // While a run is going, a time trigger that stays due would be noted on every tick:
    // count each one once by keeping only the first pending.
    if (this.#running && this.#pending) return undefined;
    this.#fire(fired);
    return fired;
  }

  /** What the scheduler is doing now. */
  status(): SchedulerStatus {
    const nextDueAt = this.#triggers.nextDue(this.#triggerState(), this.#now());
    return {
      state: this.#state,
      ...(this.#trigger ? { trigger: this.#trigger } : {}),
      ...(this.#progress ? { progress: this.#progress } : {}),
      ...(this.#startedAt !== undefined ? { startedAt: this.#startedAt } : {}),
      ...(this.#pending ? { pending: this.#pending } : {}),
      coalesced: this.#coalesced,
      runs: this.#runs,
      failures: this.#failures,
      ...(this.#lastResult ? { lastResult: this.#lastResult } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
      ...(nextDueAt !== undefined ? { nextDueAt } : {}),
      newFrames: this.#newFrames,
      ...(this.#promotedMedian !== undefined ? { driftBaseline: this.#promotedMedian } : {}),
    };
  }

  /** Resolves when no run is going (including a pending run that follows). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Stops the timer, drops a pending run, cancels the current one and waits for it (and
   * its `onResult`) to end. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      this.#options.signal?.removeEventListener("abort", this.#onAbort);
      clearTimeout(this.#timer);
      this.#pending = undefined;
      this.#runAbort?.abort();
      await this.idle();
    })();
    return this.#closing;
  }

  /** Same as {@linkcode RetrainScheduler.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #triggerState(): TriggerState {
    return {
      lastStartAt: this.#lastStartAt,
      ...(this.#lastEndAt !== undefined ? { lastEndAt: this.#lastEndAt } : {}),
      training: this.#running !== undefined,
      newFrames: this.#newFrames,
      recentScores: this.#scores,
      ...(this.#promotedMedian !== undefined ? { promotedMedian: this.#promotedMedian } : {}),
    };
  }

  #arm(): void {
    clearTimeout(this.#timer);
    if (this.#stop.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.evaluate();
      this.#arm();
    }, this.#checkEveryMs);
  }

  #fire(trigger: TriggerFired): "started" | "pending" {
    if (this.#running) {
      if (this.#pending) this.#coalesced++;
      else this.#pending = trigger;
      this.#options.logger?.info("retrain trigger noted while training", {
        reason: trigger.reason,
      });
      return "pending";
    }
    this.#running = this.#loop(trigger).finally(() => (this.#running = undefined));
    return "started";
  }

  async #loop(first: TriggerFired): Promise<void> {
    let trigger: TriggerFired | undefined = first;
    while (trigger && !this.#stop.signal.aborted) {
      await this.#runOnce(trigger);
      trigger = this.#pending;
      this.#pending = undefined;
    }
  }

  async #runOnce(trigger: TriggerFired): Promise<void> {
    const log = this.#options.logger;
    const abort = new AbortController();
    this.#runAbort = abort;
    this.#runs++;
    this.#trigger = trigger;
    this.#startedAt = this.#now();
    this.#lastStartAt = this.#startedAt;
    this.#newFrames = 0;
    this.#progress = undefined;
    this.#state = "preparing";
    log?.info("retrain starting", { reason: trigger.reason });
    try {
      this.#options.onStart?.(trigger);
    } catch (e) {
      log?.warn("retrain onStart failed", { error: errorMessage(e) });
    }
    let outcome: Omit<RetrainOutcome, "cancelled">;
    let held: Disposable | undefined;
    try {
      const gate = this.#options.gate;
      if (gate?.busy) log?.info("waiting for another camera's training to end");
      held = await (gate ?? this.#gate).acquire(abort.signal);
      const prepared = await this.#options.prepareData(trigger, abort.signal);
      if (abort.signal.aborted) {
        outcome = { trigger, error: "Cannot train: cancelled" };
      } else {
        this.#state = "training";
        await using proc = new TrainProcess({
          ...this.#options.train,
          dataDir: prepared.dataDir,
          outDir: prepared.outDir,
          signal: abort.signal,
          onProgress: (p) => {
            this.#progress = p;
            this.#options.onProgress?.(p);
          },
        });
        const result = await proc.result;
        outcome = { trigger, result, ...(result.error ? { error: result.error } : {}) };
      }
    } catch (e) {
      outcome = abort.signal.aborted
        ? { trigger, error: "Cannot train: cancelled" }
        : { trigger, error: `Cannot prepare training data: ${errorMessage(e)}` };
    } finally {
      held?.[Symbol.dispose]();
    }
    this.#runAbort = undefined;
    this.#lastEndAt = this.#now();
    if (outcome.result) this.#lastResult = outcome.result;
    const cancelled = outcome.result?.cancelled === true || abort.signal.aborted;
    this.#lastError = outcome.error;
    if (outcome.error !== undefined && !cancelled) {
      this.#failures++;
      log?.warn("retrain failed", { reason: trigger.reason, error: outcome.error });
    } else {
      log?.info(cancelled ? "retrain cancelled" : "retrain done", { reason: trigger.reason });
    }
    try {
      await this.#options.onResult?.({ ...outcome, cancelled });
    } catch (e) {
      log?.warn("retrain onResult failed", { error: errorMessage(e) });
    }
    this.#state = "idle";
    this.#trigger = undefined;
    this.#startedAt = undefined;
    this.#progress = undefined;
  }
}
