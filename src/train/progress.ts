/**
 * Training progress: a one-line bar redrawn in place on a terminal (step / total, losses,
 * steps per second, time left), plain log lines every N steps otherwise.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import type { StepEvent } from "./loop.ts";

/** Where the bar is drawn: a synchronous writer such as `Deno.stdout`. */
export interface ProgressWriter {
  writeSync(bytes: Uint8Array): number;
}

/** Options of {@linkcode TrainProgress}. */
export interface TrainProgressOptions {
  /** Draw a bar (true) or log lines (false). Default `Deno.stdout.isTerminal()`. */
  readonly terminal?: boolean;
  /** Where the bar goes. Default `Deno.stdout`. */
  readonly writer?: ProgressWriter;
  /** Receives the plain lines. */
  readonly log: Logger;
  /** Log a line every this many steps when not on a terminal. Default 10. */
  readonly every?: number;
  /** The clock in milliseconds. Default `performance.now`. */
  readonly now?: () => number;
  /** The bar's width in characters. Default 24. */
  readonly barWidth?: number;
}

/** Formats seconds as `1h02m03s`, `4m05s` or `6s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h${pad(m)}m${pad(r)}s`;
  if (m > 0) return `${m}m${pad(r)}s`;
  return `${r}s`;
}

const encoder = new TextEncoder();

/**
 * Shows training progress. Rates count only the steps of this session (a resumed run
 * starts its clock at its first step).
 */
export class TrainProgress {
  readonly #terminal: boolean;
  readonly #writer: ProgressWriter;
  readonly #log: Logger;
  readonly #every: number;
  readonly #now: () => number;
  readonly #width: number;
  #startTime: number | undefined;
  #startStep = 0;
  #drawn = false;

  /** @param options where and how often to report. */
  constructor(options: TrainProgressOptions) {
    this.#terminal = options.terminal ?? Deno.stdout.isTerminal();
    this.#writer = options.writer ?? Deno.stdout;
    this.#log = options.log;
    this.#every = Math.max(1, options.every ?? 10);
    this.#now = options.now ?? (() => performance.now());
    this.#width = options.barWidth ?? 24;
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

  /** The progress line of an event (without the bar). */
  line(e: StepEvent): string {
    const rate = this.rate(e.step);
    const left = rate > 0 ? (e.total - e.step) / rate : NaN;
    const l = e.losses;
    const perStep = rate > 0 ? ` (${(1 / rate).toFixed(2)} s/step)` : "";
    return `step ${e.step}/${e.total} loss ${l.loss.toFixed(4)} st ${l.lossSt.toFixed(4)} ` +
      `ae ${l.lossAe.toFixed(4)} stae ${l.lossStae.toFixed(4)} lr ${e.lr.toExponential(0)} ` +
      `${rate.toFixed(3)} steps/s${perStep} ETA ${formatDuration(left)}`;
  }

  /** Reports one completed step. */
  update(e: StepEvent): void {
    if (this.#startTime === undefined) this.start(e.step - 1);
    if (this.#terminal) {
      const filled = Math.round((e.step / e.total) * this.#width);
      const bar = "#".repeat(filled) + "-".repeat(this.#width - filled);
      this.#writer.writeSync(encoder.encode(`\r\x1b[2K[${bar}] ${this.line(e)}`));
      this.#drawn = true;
    } else if (e.step % this.#every === 0 || e.step === e.total) {
      this.#log.info(this.line(e));
    }
  }

  /** Ends the bar's line so that later output starts on a fresh line. */
  finish(): void {
    if (this.#drawn) this.#writer.writeSync(encoder.encode("\n"));
    this.#drawn = false;
  }
}
