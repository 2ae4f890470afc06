/**
 * When to retrain: pure trigger logic over an explicit state and an injected clock (`now`,
 * epoch milliseconds), so that every decision can be tested without waiting.
 *
 * Five triggers, checked in this order (the first that fires wins):
 * 1. **manual**: an operator's command (`state.manual`).
 * 2. **drift**: the median score of the last `window` normal frames rose above `bound`, or
 *    above `factor` times the baseline: the median of the first `window` normal frames the
 *    serving model scored (after start or a promotion).
 * 3. **count**: `minNewFrames` new normal frames since the last training started.
 * 4. **daily**: a clock time (`"02:00"`, `"14:30"`) passed since the last training started;
 *    times are read in UTC by default, or in the process's local time zone (the `TZ`
 *    environment variable) with `timeZone: "local"`.
 * 5. **interval**: `intervalMs` since the last training started (`"6h"` via
 *    {@linkcode parseDuration}).
 *
 * The data triggers (drift, count) never fire while a training runs (the running training
 * already answers them) nor within `cooldownMs` after one ended, so a candidate that is
 * refused does not make the device train back to back.
 *
 * @example
 * ```ts
 * import { RetrainTriggers } from "./triggers.ts";
 *
 * const start = Date.now();
 * const triggers = new RetrainTriggers({ interval: "6h", dailyAt: ["02:00"], minNewFrames: 500 });
 * const fired = triggers.check({ lastStartAt: start, newFrames: 512, recentScores: [] }, Date.now());
 * // { kind: "count", reason: "512 new normal frames (at least 500)" }
 * ```
 *
 * @module
 */

import { median } from "../core/percentiles.ts";

/** Which trigger fired. */
export type TriggerKind = "manual" | "drift" | "count" | "daily" | "interval";

/** A trigger that fired, with a short reason for logs and the MQTT model topic. */
export interface TriggerFired {
  /** Which trigger. */
  readonly kind: TriggerKind;
  /** A short, human-readable reason, e.g. `"interval: 6h since the last training"`. */
  readonly reason: string;
}

/** The drift trigger's settings. */
export interface DriftConfig {
  /** How many recent normal frames the median is taken over. Default 100. */
  readonly window?: number;
  /** Fires when the median exceeds this score. */
  readonly bound?: number;
  /** Fires when the median exceeds this times the baseline (see the module doc). */
  readonly factor?: number;
}

/** The triggers as written in the pipeline YAML (every field optional: omitted = off). */
export interface TriggerConfig {
  /** Retrain this long after the last training started: `"6h"`, `"90m"`, or milliseconds. */
  readonly interval?: string | number;
  /** Retrain when one of these clock times (`"HH:MM"`, 24 h) passes. */
  readonly dailyAt?: readonly string[];
  /** The time zone of `dailyAt`: `"utc"` (default) or `"local"` (the process's `TZ`). */
  readonly timeZone?: "utc" | "local";
  /** Retrain after this many new normal frames. */
  readonly minNewFrames?: number;
  /** Retrain when normal scores drift upwards. */
  readonly drift?: DriftConfig;
  /** Quiet time of the data triggers (drift, count) after a training ended. Default 600000. */
  readonly cooldown?: string | number;
}

/** {@linkcode TriggerConfig} with every default filled in; `undefined` = trigger off. */
export interface ResolvedTriggerConfig {
  readonly intervalMs: number | undefined;
  /** Minutes after midnight, ascending, unique. */
  readonly dailyMinutes: readonly number[];
  readonly timeZone: "utc" | "local";
  readonly minNewFrames: number | undefined;
  readonly drift:
    | { readonly window: number; readonly bound?: number; readonly factor?: number }
    | undefined;
  readonly cooldownMs: number;
}

/** What the triggers look at; the scheduler keeps it. */
export interface TriggerState {
  /** When the last training started (or the scheduler started, before any training). */
  readonly lastStartAt: number;
  /** When the last training ended, if one did. */
  readonly lastEndAt?: number;
  /** Whether a training is running now. */
  readonly training?: boolean;
  /** Normal frames seen since the last training started. */
  readonly newFrames: number;
  /** Scores of the most recent normal frames, oldest first (the scheduler keeps `window`). */
  readonly recentScores: readonly number[];
  /** The median normal score recorded at the last promotion, if known. */
  readonly promotedMedian?: number;
  /** A pending operator command, with its reason (e.g. `"mqtt command"`). */
  readonly manual?: string;
}

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration: milliseconds as a number, or a string of one or more `<n><unit>`
 * parts with units `ms`, `s`, `m`, `h`, `d` (`"6h"`, `"1h30m"`, `"500ms"`).
 *
 * @throws {RangeError} when the text is not a positive duration.
 */
export function parseDuration(value: string | number): number {
  if (typeof value === "number") {
    if (!(value > 0) || !Number.isFinite(value)) {
      throw new RangeError(`Cannot use duration ${value}: expected a positive number of ms`);
    }
    return value;
  }
  const text = value.trim().toLowerCase();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) {
    throw new RangeError(`Cannot use duration "${value}": expected e.g. 6h, 90m, 1h30m, 500ms`);
  }
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  if (!(ms > 0)) throw new RangeError(`Cannot use duration "${value}": it must be positive`);
  return ms;
}

/**
 * Parses a clock time `"HH:MM"` (24 h) into minutes after midnight.
 *
 * @throws {RangeError} when the text is not a valid time.
 */
export function parseClockTime(value: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(value.trim());
  const h = Number(m?.[1]);
  const min = Number(m?.[2]);
  if (!m || h > 23 || min > 59) {
    throw new RangeError(`Cannot use time "${value}": expected HH:MM between 00:00 and 23:59`);
  }
  return h * 60 + min;
}

/**
 * Fills in the defaults of a trigger config and validates it.
 *
 * @throws {RangeError} on a bad duration, time, count, window, bound or factor.
 */
export function resolveTriggerConfig(config: TriggerConfig): ResolvedTriggerConfig {
  const minNewFrames = config.minNewFrames;
  if (minNewFrames !== undefined && !(Number.isInteger(minNewFrames) && minNewFrames > 0)) {
    throw new RangeError(`Cannot use minNewFrames ${minNewFrames}: expected a positive integer`);
  }
  let drift: ResolvedTriggerConfig["drift"];
  if (config.drift) {
    const d = config.drift;
    const window = d.window ?? 100;
    if (!(Number.isInteger(window) && window > 0)) {
      throw new RangeError(`Cannot use drift window ${window}: expected a positive integer`);
    }
    if (d.bound === undefined && d.factor === undefined) {
      throw new RangeError("Cannot use drift: set a bound, a factor or both");
    }
    if (d.bound !== undefined && !Number.isFinite(d.bound)) {
      throw new RangeError(`Cannot use drift bound ${d.bound}: expected a finite number`);
    }
    if (d.factor !== undefined && !(d.factor > 0 && Number.isFinite(d.factor))) {
      throw new RangeError(`Cannot use drift factor ${d.factor}: expected a positive number`);
    }
    drift = {
      window,
      ...(d.bound !== undefined ? { bound: d.bound } : {}),
      ...(d.factor !== undefined ? { factor: d.factor } : {}),
    };
  }
  return {
    intervalMs: config.interval !== undefined ? parseDuration(config.interval) : undefined,
    dailyMinutes: [...new Set((config.dailyAt ?? []).map(parseClockTime))].sort((a, b) => a - b),
    timeZone: config.timeZone ?? "utc",
    minNewFrames,
    drift,
    cooldownMs: config.cooldown !== undefined ? parseDuration(config.cooldown) : 600_000,
  };
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function clock(minutes: number): string {
  const h = String(Math.floor(minutes / 60)).padStart(2, "0");
  return `${h}:${String(minutes % 60).padStart(2, "0")}`;
}

/** The epoch ms of `minutes` after midnight on the day of `t` (shifted by `dayOffset`). */
function atMinutes(t: number, minutes: number, dayOffset: number, utc: boolean): number {
  const d = new Date(t);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (utc) {
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + dayOffset, h, m);
  }
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + dayOffset, h, m).getTime();
}

/**
 * The triggers of one camera (or model), resolved once. Stateless: each call looks only at
 * its arguments.
 */
export class RetrainTriggers {
  /** The resolved settings. */
  readonly config: ResolvedTriggerConfig;

  /**
   * Resolves and validates the settings.
   *
   * @throws {RangeError} as {@linkcode resolveTriggerConfig}.
   */
  constructor(config: TriggerConfig) {
    this.config = resolveTriggerConfig(config);
  }

  /** How many recent normal scores drift needs (0 when drift is off). */
  get driftWindow(): number {
    return this.config.drift?.window ?? 0;
  }

  /** The latest daily time at or before `now`, as epoch ms; undefined when none is set. */
  lastDailyAt(now: number): { at: number; minutes: number } | undefined {
    const utc = this.config.timeZone === "utc";
    let best: { at: number; minutes: number } | undefined;
    for (const minutes of this.config.dailyMinutes) {
      let at = atMinutes(now, minutes, 0, utc);
      if (at > now) at = atMinutes(now, minutes, -1, utc);
      if (!best || at > best.at) best = { at, minutes };
    }
    return best;
  }

  /**
   * Which trigger fires now, if any (manual, drift, count, daily, interval: the first).
   * Never throws.
   */
  check(state: TriggerState, now: number): TriggerFired | undefined {
    const c = this.config;
    if (state.manual !== undefined) return { kind: "manual", reason: `manual: ${state.manual}` };
    const dataQuiet = state.training === true ||
      (state.lastEndAt !== undefined && now - state.lastEndAt < c.cooldownMs);
    if (c.drift && !dataQuiet && state.recentScores.length >= c.drift.window) {
      const med = median(state.recentScores.slice(-c.drift.window));
      const n = c.drift.window;
      if (c.drift.bound !== undefined && med > c.drift.bound) {
        return {
          kind: "drift",
          reason: `drift: median score ${fmt(med)} of the last ${n} normal frames > bound ${
            fmt(c.drift.bound)
          }`,
        };
      }
      const base = state.promotedMedian;
      if (c.drift.factor !== undefined && base !== undefined && med > base * c.drift.factor) {
        return {
          kind: "drift",
          reason: `drift: median score ${
            fmt(med)
          } of the last ${n} normal frames > ${c.drift.factor} x ${
            fmt(base)
          } at the last promotion`,
        };
      }
    }
    if (c.minNewFrames !== undefined && !dataQuiet && state.newFrames >= c.minNewFrames) {
      return {
        kind: "count",
        reason: `count: ${state.newFrames} new normal frames (at least ${c.minNewFrames})`,
      };
    }
    const daily = this.lastDailyAt(now);
    if (daily && daily.at > state.lastStartAt) {
      return {
        kind: "daily",
        reason: `daily: ${clock(daily.minutes)} ${c.timeZone === "utc" ? "UTC" : "local time"}`,
      };
    }
    if (c.intervalMs !== undefined && now - state.lastStartAt >= c.intervalMs) {
      return {
        kind: "interval",
        reason: `interval: ${formatDuration(c.intervalMs)} since the last training`,
      };
    }
    return undefined;
  }

  /**
   * When the next time-based trigger (daily, interval) is due, as epoch ms, for a timer;
   * `now` or earlier when one is due already; undefined when neither is set. The data
   * triggers are checked when data arrives, so they have no due time.
   */
  nextDue(state: TriggerState, now: number): number | undefined {
    const c = this.config;
    let due: number | undefined;
    const take = (t: number) => (due = due === undefined ? t : Math.min(due, t));
    if (c.intervalMs !== undefined) take(state.lastStartAt + c.intervalMs);
    const daily = this.lastDailyAt(now);
    if (daily && daily.at > state.lastStartAt) take(daily.at);
    const utc = c.timeZone === "utc";
    for (const minutes of c.dailyMinutes) {
      let at = atMinutes(now, minutes, 0, utc);
      if (at <= now) at = atMinutes(now, minutes, 1, utc);
      take(at);
    }
    return due;
  }
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(4)));
}
