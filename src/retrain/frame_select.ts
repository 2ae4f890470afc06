/**
 * Which scored frames are worth keeping as "normal" for retraining: pure decisions, no I/O.
 *
 * A {@linkcode FrameSelector} watches one camera's scored frames and releases the few that
 * pass every gate:
 *
 * 1. not anomalous itself;
 * 2. its score is at or below the configured quantile of the camera's recent scores (a rolling
 *    window; nothing passes until the window holds `minSamples` scores);
 * 3. at least `minIntervalMs` (capture time) after the last candidate;
 * 4. not a near-duplicate: the mean absolute difference of its 16 x 16 greyscale thumbnail
 *    against each of the last kept frames' thumbnails is above `duplicateThreshold`;
 * 5. no anomaly within `eventGuardMs` before or after it. "Before" is checked at once
 *    against the last anomalous capture time; "after" needs the future, so a candidate waits
 *    in a small delay buffer for `eventGuardMs` (of the injected clock, or of later captures) and is dropped if an
 *    anomaly captured within the guard arrives meanwhile.
 *
 * Backpressure: the delay buffer holds at most `maxPending` candidates; a new candidate
 * beyond that replaces nothing and is counted as skipped (`"pending-full"`).
 *
 * @example
 * ```ts
 * import { FrameSelector } from "./frame_select.ts";
 * import type { FrameStore } from "./frame_store.ts";
 * import type { ScoredFrame } from "../core/frame.ts";
 *
 * const selector = new FrameSelector({
 *   quantile: 0.5, minIntervalMs: 60_000, eventGuardMs: 30_000, duplicateThreshold: 3,
 * });
 * async function collect(scored: ScoredFrame, store: FrameStore): Promise<void> {
 *   for (const keep of selector.offer(scored)) await store.add(keep.frame, { score: keep.score });
 * }
 * ```
 *
 * @module
 */
import type { Frame, ScoredFrame } from "../core/frame.ts";
import { assertNonNegativeInteger, assertPositiveInteger } from "../core/check.ts";
import { nearestRank } from "../core/percentiles.ts";

/**
 * Options of {@linkcode FrameSelector}. The gates a pipeline file sets (`retrain.store`:
 * `quantile`, `minIntervalMs`, `eventGuardMs`, `duplicateThreshold`) are given as resolved,
 * their defaults live in `src/config/defaults.ts`; the others are optional.
 */
export interface FrameSelectorOptions {
  /** A frame is kept only when its score is at or below this quantile (0..1] of recent scores. */
  readonly quantile: number;
  /** How many recent scores the quantile is taken over. Default 512. */
  readonly windowSize?: number;
  /** No frame is kept until the window holds this many scores. Default 32. */
  readonly minSamples?: number;
  /** Minimum capture-time gap between two candidates, in milliseconds. */
  readonly minIntervalMs: number;
  /** No frame within this many milliseconds (capture time) of an anomaly is kept. */
  readonly eventGuardMs: number;
  /**
   * Mean absolute thumbnail difference (0..255) at or below which a frame is a near-duplicate;
   * a negative value turns the test off.
   */
  readonly duplicateThreshold: number;
  /** How many of the last kept thumbnails a frame is compared against. Default 8. */
  readonly duplicateHistory?: number;
  /** Most candidates waiting out the event guard. Default 16. */
  readonly maxPending?: number;
  /** The clock (epoch milliseconds) that releases waiting candidates. Default `Date.now`. */
  readonly now?: () => number;
}

/** {@linkcode FrameSelectorOptions} with every default filled in. */
export interface ResolvedFrameSelectorOptions {
  readonly quantile: number;
  readonly windowSize: number;
  readonly minSamples: number;
  readonly minIntervalMs: number;
  readonly eventGuardMs: number;
  readonly duplicateThreshold: number;
  readonly duplicateHistory: number;
  readonly maxPending: number;
  readonly now: () => number;
}

/** Why a frame was not kept. */
export type SkipReason =
  | "anomalous"
  | "warming-up"
  | "above-quantile"
  | "rate-limited"
  | "event-guard"
  | "duplicate"
  | "pending-full";

/** Counters of a {@linkcode FrameSelector}. */
export interface FrameSelectorStats {
  /** Frames offered. */
  readonly offered: number;
  /** Frames released as normal. */
  readonly released: number;
  /** Candidates waiting out the event guard. */
  readonly pending: number;
  /** Frames not kept, by reason (a candidate dropped by a later anomaly counts as `event-guard`). */
  readonly skipped: Readonly<Record<SkipReason, number>>;
}

/** Side of the greyscale thumbnail used by the near-duplicate test. */
export const THUMBNAIL_SIZE = 16;

/**
 * Resolves selector options, filling the defaults of the optional ones.
 *
 * @throws {RangeError} when a value is out of range (quantile outside (0, 1], a negative
 * interval, a non-positive window).
 */
export function resolveFrameSelectorOptions(
  options: FrameSelectorOptions,
): ResolvedFrameSelectorOptions {
  const r: ResolvedFrameSelectorOptions = {
    quantile: options.quantile,
    windowSize: options.windowSize ?? 512,
    minSamples: options.minSamples ?? 32,
    minIntervalMs: options.minIntervalMs,
    eventGuardMs: options.eventGuardMs,
    duplicateThreshold: options.duplicateThreshold,
    duplicateHistory: options.duplicateHistory ?? 8,
    maxPending: options.maxPending ?? 16,
    now: options.now ?? Date.now,
  };
  const bad = (what: string, v: number) =>
    new RangeError(`Cannot make a frame selector: ${what}, got ${v}`);
  if (!(r.quantile > 0 && r.quantile <= 1)) throw bad("quantile must be in (0, 1]", r.quantile);
  const action = "Cannot make a frame selector";
  for (const k of ["windowSize", "maxPending"] as const) assertPositiveInteger(r[k], k, action);
  for (const k of ["minSamples", "duplicateHistory"] as const) {
    assertNonNegativeInteger(r[k], k, action);
  }
  if (Number.isNaN(r.duplicateThreshold)) throw bad("duplicateThreshold must be a number", NaN);
  for (const k of ["minIntervalMs", "eventGuardMs"] as const) {
    if (!(r[k] >= 0)) throw bad(`${k} must be at least 0`, r[k]);
  }
  return r;
}

/**
 * A 16 x 16 greyscale thumbnail of an RGB frame: each cell is the mean luma (BT.601
 * integer weights) of the pixels it covers. Frames smaller than 16 px on a side repeat pixels.
 *
 * @throws {RangeError} when `rgb` does not hold `width * height * 3` bytes.
 */
export function thumbnail(frame: Pick<Frame, "width" | "height" | "rgb">): Uint8Array {
  const { width, height, rgb } = frame;
  if (width < 1 || height < 1 || rgb.length !== width * height * 3) {
    throw new RangeError(
      `Cannot make a thumbnail: expected ${width}x${height}x3 bytes, got ${rgb.length}`,
    );
  }
  const n = THUMBNAIL_SIZE;
  const out = new Uint8Array(n * n);
  for (let ty = 0; ty < n; ty++) {
    const y0 = Math.floor((ty * height) / n);
    const y1 = Math.max(y0 + 1, Math.floor(((ty + 1) * height) / n));
    for (let tx = 0; tx < n; tx++) {
      const x0 = Math.floor((tx * width) / n);
      const x1 = Math.max(x0 + 1, Math.floor(((tx + 1) * width) / n));
      let sum = 0;
      for (let y = y0; y < y1; y++) {
        let i = (y * width + x0) * 3;
        for (let x = x0; x < x1; x++, i += 3) {
          sum += 77 * rgb[i]! + 150 * rgb[i + 1]! + 29 * rgb[i + 2]!;
        }
      }
      out[ty * n + tx] = Math.round(sum / 256 / ((y1 - y0) * (x1 - x0)));
    }
  }
  return out;
}

/** Mean absolute difference (0..255) of two equal-length thumbnails. */
export function thumbnailDistance(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length || a.length === 0) {
    throw new RangeError(`Cannot compare thumbnails: lengths ${a.length} and ${b.length}`);
  }
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

interface Pending {
  readonly scored: ScoredFrame;
  readonly thumb: Uint8Array;
}

/**
 * Decides, per camera, which scored frames are stored as normal (see the module doc for the
 * gates). Feed it every scored frame of one camera in capture order with
 * {@linkcode FrameSelector.offer}; it returns the frames released from its delay buffer.
 */
export class FrameSelector {
  readonly #o: ResolvedFrameSelectorOptions;
  readonly #scores: Float64Array;
  #scoreNext = 0;
  #scoreCount = 0;
  #lastAnomalyAt = -Infinity;
  #lastCandidateAt = -Infinity;
  #kept: Uint8Array[] = [];
  #pending: Pending[] = [];
  #offered = 0;
  #released = 0;
  #skipped: Record<SkipReason, number> = {
    "anomalous": 0,
    "warming-up": 0,
    "above-quantile": 0,
    "rate-limited": 0,
    "event-guard": 0,
    "duplicate": 0,
    "pending-full": 0,
  };
  #lastSkip: SkipReason | undefined;
  #latestCapture = -Infinity;

  /**
   * Makes a selector.
   *
   * @throws {RangeError} as {@linkcode resolveFrameSelectorOptions}.
   */
  constructor(options: FrameSelectorOptions) {
    this.#o = resolveFrameSelectorOptions(options);
    this.#scores = new Float64Array(this.#o.windowSize);
  }

  /** The resolved options. */
  get options(): ResolvedFrameSelectorOptions {
    return this.#o;
  }

  /** Why the last offered frame did not become a candidate; `undefined` if it did. */
  get lastSkip(): SkipReason | undefined {
    return this.#lastSkip;
  }

  /**
   * The score at or below which a frame currently passes the quantile gate: `undefined` while
   * warming up, `Infinity` when `minSamples` is 0 and no score has been seen.
   */
  get scoreBound(): number | undefined {
    if (this.#scoreCount < this.#o.minSamples) return undefined;
    if (this.#scoreCount === 0) return Infinity;
    return nearestRank(this.#scores.slice(0, this.#scoreCount).sort(), this.#o.quantile);
  }

  /**
   * Tells the selector of an anomaly event captured at `capturedAt` (epoch ms), e.g. from
   * another source than the scores; waiting candidates within the guard are dropped.
   */
  noteAnomaly(capturedAt: number): void {
    this.#lastAnomalyAt = Math.max(this.#lastAnomalyAt, capturedAt);
    const guard = this.#o.eventGuardMs;
    const before = this.#pending.length;
    this.#pending = this.#pending.filter((p) =>
      Math.abs(p.scored.frame.capturedAt - capturedAt) > guard
    );
    this.#skipped["event-guard"] += before - this.#pending.length;
  }

  /**
   * Offers one scored frame; returns the candidates (possibly this frame's predecessors)
   * whose event guard has now passed, oldest first. Never throws for a well-formed frame.
   *
   * @throws {RangeError} when the frame's `rgb` does not match its size.
   */
  offer(scored: ScoredFrame): ScoredFrame[] {
    this.#offered++;
    this.#lastSkip = this.#gate(scored);
    if (this.#lastSkip !== undefined) this.#skipped[this.#lastSkip]++;
    return this.release();
  }

  /**
   * Returns (and forgets) the candidates whose event guard has passed, oldest first. "Now" is
   * the later of the clock and the latest capture time offered.
   */
  release(): ScoredFrame[] {
    const now = Math.max(this.#o.now(), this.#latestCapture);
    const out: ScoredFrame[] = [];
    while (this.#pending.length > 0) {
      const p = this.#pending[0]!;
      if (now - p.scored.frame.capturedAt < this.#o.eventGuardMs) break;
      this.#pending.shift();
      this.#remember(p.thumb);
      out.push(p.scored);
    }
    this.#released += out.length;
    return out;
  }

  /** Counters since construction. */
  stats(): FrameSelectorStats {
    return {
      offered: this.#offered,
      released: this.#released,
      pending: this.#pending.length,
      skipped: { ...this.#skipped },
    };
  }

  #gate(scored: ScoredFrame): SkipReason | undefined {
    const t = scored.frame.capturedAt;
    this.#latestCapture = Math.max(this.#latestCapture, t);
    if (scored.anomalous) {
      this.noteAnomaly(t);
      return "anomalous";
    }
    const bound = this.scoreBound;
    this.#addScore(scored.score);
    if (bound === undefined) return "warming-up";
    if (!(scored.score <= bound)) return "above-quantile";
    if (t - this.#lastAnomalyAt <= this.#o.eventGuardMs) return "event-guard";
    if (t - this.#lastCandidateAt < this.#o.minIntervalMs) return "rate-limited";
    const thumb = thumbnail(scored.frame);
    const recent = [...this.#kept, ...this.#pending.map((p) => p.thumb)];
    if (recent.some((k) => thumbnailDistance(k, thumb) <= this.#o.duplicateThreshold)) {
      return "duplicate";
    }
    if (this.#pending.length >= this.#o.maxPending) return "pending-full";
    this.#lastCandidateAt = t;
    this.#pending.push({ scored, thumb });
    return undefined;
  }

  #addScore(score: number): void {
    if (!Number.isFinite(score)) return;
    this.#scores[this.#scoreNext] = score;
    this.#scoreNext = (this.#scoreNext + 1) % this.#scores.length;
    if (this.#scoreCount < this.#scores.length) this.#scoreCount++;
  }

  #remember(thumb: Uint8Array): void {
    if (this.#o.duplicateHistory === 0) return;
    this.#kept.push(thumb);
    if (this.#kept.length > this.#o.duplicateHistory) this.#kept.shift();
  }
}
