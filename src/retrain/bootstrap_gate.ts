/**
 * When a key without a model stores a frame and starts its first training: at most one
 * frame per `intervalMs` of capture time; a training once `needed` normal frames are
 * stored, one at a time, and after one ended without a model, not before `retryMs` later.
 *
 * @example
 * ```ts
 * import { BootstrapGate } from "./bootstrap_gate.ts";
 *
 * const gate = new BootstrapGate({ needed: 50, intervalMs: 1000, retryMs: 60_000 });
 * const now = Date.now();
 * if (gate.admit(now)) console.log("store this frame");
 * if (gate.start(50, now)) console.log("start the first training");
 * ```
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";

/** Options of {@linkcode BootstrapGate}. */
export interface BootstrapGateOptions {
  /** Normal frames the first training needs. */
  readonly needed: number;
  /** Least capture-time gap between stored frames, ms. */
  readonly intervalMs: number;
  /** After a training that ended without a model, the least time before the next, ms. */
  readonly retryMs: number;
}

/** The bootstrap's gates; see the module doc. */
export class BootstrapGate {
  /** Normal frames the first training needs. */
  readonly needed: number;
  readonly #o: BootstrapGateOptions;
  #lastAt = -Infinity;
  #retryAt = -Infinity;
  #started = false;

  /**
   * Takes the settings.
   *
   * @throws {RangeError} when `needed` is not a positive integer.
   */
  constructor(options: BootstrapGateOptions) {
    this.#o = options;
    this.needed = assertPositiveInteger(
      options.needed,
      "bootstrapFrames",
      "Cannot make a retrain coordinator",
    );
  }

  /** Whether a training started and has not ended. */
  get started(): boolean {
    return this.#started;
  }

  /** Whether a frame captured at `capturedAt` is stored (and, if so, notes it). */
  admit(capturedAt: number): boolean {
    if (capturedAt - this.#lastAt < this.#o.intervalMs) return false;
    this.#lastAt = capturedAt;
    return true;
  }

  /** Whether a training starts now with `collected` frames stored (and, if so, notes it). */
  start(collected: number, now: number): boolean {
    if (this.#started || collected < this.needed || now < this.#retryAt) return false;
    this.#started = true;
    return true;
  }

  /** The training ended (the key still has no model): the next may start `retryMs` on. */
  ended(now: number): void {
    this.#started = false;
    this.#retryAt = now + this.#o.retryMs;
  }
}
