/**
 * A rolling window of recent samples (latencies, in milliseconds) with p50 / p95 / p99,
 * plus running totals over every sample ever added (for Prometheus `_sum` / `_count`).
 *
 * @example
 * ```ts
 * const w = new RollingPercentiles(512);
 * w.add(12.5);
 * w.add(14);
 * const { p50, p99, count } = w.snapshot();
 * ```
 *
 * @module
 */
import type { Percentiles } from "./status.ts";
import { assertPositiveInteger } from "./check.ts";

/**
 * A {@linkcode Percentiles} snapshot that also carries totals since start: `sum` of every
 * sample and `total` samples. It is assignable to `Percentiles`, so it can go straight into
 * a `PipelineStatus`; `/metrics` renders `_sum` and `_count` when these fields are there.
 */
export interface PercentileSnapshot extends Percentiles {
  /** The sum of every sample added since start (not only the window's). */
  readonly sum: number;
  /** How many samples were added since start (not only the window's). */
  readonly total: number;
}

/** The snapshot of an empty window: every percentile 0, count 0. */
export const EMPTY_PERCENTILES: Percentiles = Object.freeze({ p50: 0, p95: 0, p99: 0, count: 0 });

/**
 * The `q`-quantile (0 <= q <= 1) of ascending sorted values by the nearest-rank method:
 * the smallest value with at least `q * n` values at or below it. 0 for no values.
 */
export function nearestRank(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1]!;
}

/** The median of some numbers (the mean of the middle two for an even count); NaN if none. */
export function median(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  const s = Array.from(values).sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Keeps the last `capacity` samples in a ring and computes percentiles on demand (a sort
 * of at most `capacity` numbers per {@linkcode RollingPercentiles.snapshot} call).
 */
export class RollingPercentiles {
  #ring: Float64Array;
  #next = 0;
  #count = 0;
  #sum = 0;
  #total = 0;

  /**
   * Makes an empty window.
   *
   * @param capacity How many recent samples the window holds. Default 1024.
   * @throws {RangeError} when `capacity` is not a positive integer.
   */
  constructor(capacity = 1024) {
    assertPositiveInteger(capacity, "capacity", "Cannot make a percentile window");
    this.#ring = new Float64Array(capacity);
  }

  /** How many samples the window can hold. */
  get capacity(): number {
    return this.#ring.length;
  }

  /** Adds a sample, evicting the oldest when the window is full. Non-finite samples are ignored. */
  add(sample: number): void {
    if (!Number.isFinite(sample)) return;
    this.#ring[this.#next] = sample;
    this.#next = (this.#next + 1) % this.#ring.length;
    if (this.#count < this.#ring.length) this.#count++;
    this.#sum += sample;
    this.#total++;
  }

  /** p50 / p95 / p99 of the window (nearest rank), its size, and the totals since start. */
  snapshot(): PercentileSnapshot {
    const values = this.#ring.slice(0, this.#count).sort();
    return {
      p50: nearestRank(values, 0.5),
      p95: nearestRank(values, 0.95),
      p99: nearestRank(values, 0.99),
      count: this.#count,
      sum: this.#sum,
      total: this.#total,
    };
  }

  /** Empties the window and resets the totals. */
  clear(): void {
    this.#next = 0;
    this.#count = 0;
    this.#sum = 0;
    this.#total = 0;
  }
}
