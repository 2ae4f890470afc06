/**
 * Helpers for the tests of `src/retrain/` (not imported by non-test code).
 *
 * @module
 */
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";

/**
 * Trigger settings as a pipeline file resolves them: every trigger off and the file's
 * default cooldown (10 minutes), with `over` on top.
 */
export function triggerSettings(
  over: Partial<ResolvedRetrainTriggers> = {},
): ResolvedRetrainTriggers {
  return {
    intervalMs: null,
    dailyAt: [],
    timeZone: "utc",
    minNewFrames: null,
    drift: null,
    cooldownMs: 600_000,
    ...over,
  };
}
