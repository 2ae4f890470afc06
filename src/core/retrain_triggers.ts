/**
 * The retraining triggers as resolved from a pipeline file: what `src/config` produces
 * (`ResolvedRetrain.triggers`) and what `src/retrain`'s triggers take, unchanged. Durations
 * are milliseconds; `null` turns a trigger off. The values were checked when the file was
 * read; their defaults live in `src/config/defaults.ts`.
 *
 * @module
 */

/** The drift trigger: the median score of the last `window` normal frames rose. */
export interface DriftTrigger {
  /** How many recent normal frames the median covers. */
  readonly window: number;
  /** Fires when the median exceeds this raw score; null = no bound. */
  readonly bound: number | null;
  /** Fires when the median exceeds this times the baseline; null = no factor. */
  readonly factor: number | null;
}

/** When a training starts (besides the operator's command); null = that trigger is off. */
export interface ResolvedRetrainTriggers {
  /** Train this long after the last training started, in milliseconds. */
  readonly intervalMs: number | null;
  /** Clock times `HH:MM` (two-digit hours) to train at, ascending, unique. */
  readonly dailyAt: readonly string[];
  /** The zone of `dailyAt`: UTC, or the process's local time zone (`TZ`). */
  readonly timeZone: "utc" | "local";
  /** Train once this many new normal frames were kept. */
  readonly minNewFrames: number | null;
  /**
   * Train when the median score of the last `window` normal frames rises above `bound`
   * (a raw score) or above `factor` times the median recorded at the last promotion.
   */
  readonly drift: DriftTrigger | null;
  /** Quiet time of the data triggers (drift, count) after a training ended, milliseconds. */
  readonly cooldownMs: number;
}
