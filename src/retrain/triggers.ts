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
 * 5. **interval**: `intervalMs` since the last training started.
 *
 * The data triggers (drift, count) never fire while a training runs (the running training
 * already answers them) nor within `cooldownMs` after one ended, so a candidate that is
 * refused does not make the device train back to back.
 *
 * The settings are the pipeline file's, resolved and checked by `src/config`
 * ({@linkcode ResolvedRetrainTriggers}): durations in milliseconds, `null` for a trigger
 * that is off, every default filled in. This module neither parses nor defaults them.
 *
 * @example
 * ```ts
 * import { RetrainTriggers } from "./triggers.ts";
 *
 * const start = Date.now();
 * const triggers = new RetrainTriggers({
 *   intervalMs: 6 * 3_600_000, dailyAt: ["02:00"], timeZone: "utc", minNewFrames: 500,
 *   drift: null, cooldownMs: 600_000,
 * });
 * const fired = triggers.check({ lastStartAt: start, newFrames: 512, recentScores: [] }, Date.now());
 * // { kind: "count", reason: "512 new normal frames (at least 500)" }
 * ```
 *
 * @module
 */

import { median } from "../core/percentiles.ts";
import type { RetrainTrigger } from "../core/retrain_event.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";

/** Which trigger fired. */
export type TriggerKind = "manual" | "drift" | "count" | "daily" | "interval";

/** A trigger that fired, with a short reason for logs and the MQTT model topic. */
export interface TriggerFired {
  /** Which trigger. */
  readonly kind: TriggerKind;
  /** A short, human-readable reason, e.g. `"interval: 6h since the last training"`. */
  readonly reason: string;
}

/**
 * What a fired trigger is called in the lifecycle events: `schedule` for daily and interval,
 * `command` for manual.
 */
export function retrainTrigger(fired: TriggerFired): RetrainTrigger {
  switch (fired.kind) {
    case "drift":
    case "count":
      return fired.kind;
    case "daily":
    case "interval":
      return "schedule";
    case "manual":
      return "command";
  }
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

/** `"HH:MM"` (as resolved: checked, two-digit hours) -> minutes after midnight. */
function minutesOf(time: string): number {
  const [h = "0", m = "0"] = time.split(":");
  return Number(h) * 60 + Number(m);
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
 * The triggers of one camera (or model). Stateless: each call looks only at
 * its arguments.
 */
export class RetrainTriggers {
  /** The settings, as given. */
  readonly config: ResolvedRetrainTriggers;
  /** `dailyAt` as minutes after midnight. */
  readonly #dailyMinutes: readonly number[];

  /** Takes the resolved settings (see the module doc); never throws. */
  constructor(config: ResolvedRetrainTriggers) {
    this.config = config;
    this.#dailyMinutes = config.dailyAt.map(minutesOf);
  }

  /** How many recent normal scores drift needs (0 when drift is off). */
  get driftWindow(): number {
    return this.config.drift?.window ?? 0;
  }

  /** The latest daily time at or before `now`, as epoch ms; undefined when none is set. */
  lastDailyAt(now: number): { at: number; minutes: number } | undefined {
    const utc = this.config.timeZone === "utc";
    let best: { at: number; minutes: number } | undefined;
    for (const minutes of this.#dailyMinutes) {
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
      if (c.drift.bound !== null && med > c.drift.bound) {
        return {
          kind: "drift",
          reason: `drift: median score ${fmt(med)} of the last ${n} normal frames > bound ${
            fmt(c.drift.bound)
          }`,
        };
      }
      const base = state.promotedMedian;
      if (c.drift.factor !== null && base !== undefined && med > base * c.drift.factor) {
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
    if (c.minNewFrames !== null && !dataQuiet && state.newFrames >= c.minNewFrames) {
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
    if (c.intervalMs !== null && now - state.lastStartAt >= c.intervalMs) {
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
    if (c.intervalMs !== null) take(state.lastStartAt + c.intervalMs);
    const daily = this.lastDailyAt(now);
    if (daily && daily.at > state.lastStartAt) take(daily.at);
    const utc = c.timeZone === "utc";
    for (const minutes of this.#dailyMinutes) {
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
