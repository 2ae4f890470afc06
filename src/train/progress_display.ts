/**
 * Training progress for people: a one-line bar redrawn in place on a terminal (step / total,
 * losses, steps per second, time left), plain log lines every N steps otherwise. At the same
 * cadence it hands the same figures as a {@linkcode TrainProgress} to a hook (the `train`
 * command's `--progress-json` lines).
 *
 * @module
 */
import { formatDuration } from "../core/duration.ts";
import type { Logger } from "../core/log.ts";
import type { StepEvent } from "./loop.ts";
import type { TrainProgress } from "./progress_event.ts";

/** Where the bar is drawn: a synchronous writer such as `Deno.stdout`. */
export interface ProgressWriter {
  writeSync(bytes: Uint8Array): number;
}

/** Options of {@linkcode ProgressDisplay}. */
export interface ProgressDisplayOptions {
  /** Draw a bar (true) or log lines (false). Default `Deno.stdout.isTerminal()`. */
  readonly terminal?: boolean;
  /** Where the bar goes. Default `Deno.stdout`. */
  readonly writer?: ProgressWriter;
  /** Receives the plain lines. */
  readonly log: Logger;
  /** Log a line (and report) every this many steps, and at the last. Default 10. */
  readonly every?: number;
  /**
   * Receives the progress every `every` steps and at the last step, on a terminal too.
   * Exceptions it throws are the caller's.
   */
  readonly onReport?: (progress: TrainProgress) => void;
  /** The clock in milliseconds. Default `performance.now`. */
  readonly now?: () => number;
  /** The bar's width in characters. Default 24. */
  readonly barWidth?: number;
}

const encoder = new TextEncoder();

/**
 * Shows training progress. Rates count only the steps of this session (a resumed run
 * starts its clock at its first step).
 */
export class ProgressDisplay {
  readonly #terminal: boolean;
  readonly #writer: ProgressWriter;
  readonly #log: Logger;
  readonly #every: number;
  readonly #now: () => number;
  readonly #width: number;
  readonly #onReport: ((progress: TrainProgress) => void) | undefined;
  #startTime: number | undefined;
  #startStep = 0;
  #drawn = false;

  /** @param options where and how often to report. */
  constructor(options: ProgressDisplayOptions) {
    this.#terminal = options.terminal ?? Deno.stdout.isTerminal();
    this.#writer = options.writer ?? Deno.stdout;
    this.#log = options.log;
    this.#every = Math.max(1, options.every ?? 10);
    this.#now = options.now ?? (() => performance.now());
    this.#width = options.barWidth ?? 24;
    this.#onReport = options.onReport;
  }

  /** Marks the session's first step (`done` steps were completed before it). */
  start(done: number): void {
    this.#startTime = this.#now();
    this.#startStep = done;
  }

  /** The steps per second of this session so far (0 before a step). */
  rate(step: number): number {
    const elapsed = (this.#now() - (this.#startTime ?? this.#now())) / 1000;
    const steps = step - this.#startStep;
    return elapsed > 0 && steps > 0 ? steps / elapsed : 0;
  }

  /** The seconds left at this session's rate (NaN before a step). */
  #secondsLeft(e: StepEvent, rate: number): number {
    return rate > 0 ? (e.total - e.step) / rate : NaN;
  }

  /** The progress of an event: step, total, loss and the time left, when known. */
  progress(e: StepEvent): TrainProgress {
    const left = this.#secondsLeft(e, this.rate(e.step));
    return {
      step: e.step,
      total: e.total,
      ...(Number.isFinite(e.losses.loss) ? { loss: e.losses.loss } : {}),
      ...(Number.isFinite(left)
        ? { eta: formatDuration(left), etaMs: Math.round(Math.max(0, left) * 1000) }
        : {}),
    };
  }

  /** The progress line of an event (without the bar). */
  line(e: StepEvent): string {
    const rate = this.rate(e.step);
    const left = this.#secondsLeft(e, rate);
    const l = e.losses;
    const perStep = rate > 0 ? ` (${(1 / rate).toFixed(2)} s/step)` : "";
    return `step ${e.step}/${e.total} loss ${l.loss.toFixed(4)} st ${l.lossSt.toFixed(4)} ` +
      `ae ${l.lossAe.toFixed(4)} stae ${l.lossStae.toFixed(4)} lr ${e.lr.toExponential(0)} ` +
      `${rate.toFixed(3)} steps/s${perStep} ETA ${formatDuration(left)}`;
  }

  /** Reports one completed step. */
  update(e: StepEvent): void {
    if (this.#startTime === undefined) this.start(e.step - 1);
    const due = e.step % this.#every === 0 || e.step === e.total;
    if (this.#terminal) {
      const filled = Math.round((e.step / e.total) * this.#width);
      const bar = "#".repeat(filled) + "-".repeat(this.#width - filled);
      this.#writer.writeSync(encoder.encode(`\r\x1b[2K[${bar}] ${this.line(e)}`));
      this.#drawn = true;
    } else if (due) {
      this.#log.info(this.line(e));
    }
    if (due) this.#onReport?.(this.progress(e));
  }

  /** Ends the bar's line so that later output starts on a fresh line. */
  finish(): void {
    if (this.#drawn) this.#writer.writeSync(encoder.encode("\n"));
    this.#drawn = false;
  }
}
