/**
 * Jittered exponential backoff for restarting a failed source or reconnecting to a broker.
 *
 * @module
 */

/** Options of {@linkcode Backoff}. */
export interface BackoffOptions {
  /** The first delay in milliseconds. */
  readonly initialMs: number;
  /** The largest delay in milliseconds, jitter included. */
  readonly maxMs: number;
  /** Relative jitter: each delay is multiplied by a uniform factor in [1 - j, 1 + j]. Default 0.2. */
  readonly jitter?: number;
  /** A source of uniform numbers in [0, 1), for tests. Default `Math.random`. */
  readonly random?: () => number;
}

/**
 * Delays that start at `initialMs`, double after each attempt and stop growing at `maxMs`,
 * each multiplied by a random factor in [1 - jitter, 1 + jitter] (±20 % by default, so that
 * clients that failed together do not retry together) and then capped at `maxMs`.
 * {@linkcode Backoff.reset} starts over, for when a source has been healthy for a while.
 *
 * @example
 * ```ts
 * const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
 * backoff.next(); // 400..600
 * backoff.next(); // 800..1200
 * ```
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempt = 0;

  /** @throws {RangeError} when a delay is negative, `maxMs < initialMs`, or jitter is outside [0, 1]. */
  constructor(options: BackoffOptions) {
    const { initialMs, maxMs } = options;
    const jitter = options.jitter ?? 0.2;
    if (!(initialMs >= 0) || !(maxMs >= initialMs) || !Number.isFinite(maxMs)) {
      throw new RangeError(
        `Cannot make backoff: need 0 <= initialMs <= maxMs, got ${initialMs} and ${maxMs}`,
      );
    }
    if (!(jitter >= 0 && jitter <= 1)) {
      throw new RangeError(`Cannot make backoff: jitter must be in [0, 1], got ${jitter}`);
    }
    this.#initialMs = initialMs;
    this.#maxMs = maxMs;
    this.#jitter = jitter;
    this.#random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the start or the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The next delay in milliseconds (an integer). */
  next(): number {
    const base = Math.min(this.#initialMs * 2 ** Math.min(this.#attempt, 52), this.#maxMs);
    this.#attempt++;
    const factor = 1 + this.#jitter * (2 * this.#random() - 1);
    return Math.round(Math.min(base * factor, this.#maxMs));
  }

  /** Starts over at `initialMs`. */
  reset(): void {
    this.#attempt = 0;
  }
}
