import { assertEquals } from "../../tests/assert.ts";
import { triggerSettings } from "./_test_utils.ts";
import { retrainTrigger, RetrainTriggers, type TriggerState } from "./triggers.ts";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 28, 10, 0); // 10:00 UTC

function state(over: Partial<TriggerState> = {}): TriggerState {
  return { lastStartAt: T0, newFrames: 0, recentScores: [], ...over };
}

Deno.test("RetrainTriggers.check() fires the interval once it has elapsed", () => {
  const t = new RetrainTriggers(triggerSettings({ intervalMs: 6 * H }));
  assertEquals(t.check(state(), T0 + 6 * H - 1), undefined);
  assertEquals(t.check(state(), T0 + 6 * H), {
    kind: "interval",
    reason: "interval: 6h since the last training",
  });
  assertEquals(t.nextDue(state(), T0), T0 + 6 * H);
});

Deno.test("RetrainTriggers.check() fires a daily UTC time after it passes, once", () => {
  const t = new RetrainTriggers(triggerSettings({ dailyAt: ["02:00", "14:30"] }));
  assertEquals(t.check(state(), T0 + 4 * H), undefined); // 14:00
  const at = T0 + 4.5 * H; // 14:30
  assertEquals(t.check(state(), at), { kind: "daily", reason: "daily: 14:30 UTC" });
  // A training started at 14:30: nothing until 02:00 tomorrow.
  assertEquals(t.check(state({ lastStartAt: at }), at + 11 * H), undefined);
  assertEquals(t.nextDue(state({ lastStartAt: at }), at + H), at + 11.5 * H);
  assertEquals(t.check(state({ lastStartAt: at }), at + 11.5 * H)?.reason, "daily: 02:00 UTC");
});

Deno.test("RetrainTriggers.check() reads local daily times in the process's time zone", () => {
  const t = new RetrainTriggers(triggerSettings({ dailyAt: ["03:15"], timeZone: "local" }));
  const d = new Date(T0);
  const local = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1, 3, 15).getTime();
  assertEquals(t.check(state(), local - 1), undefined);
  assertEquals(t.check(state(), local), { kind: "daily", reason: "daily: 03:15 local time" });
});

Deno.test("RetrainTriggers.check() fires count at the threshold, not during a run or cooldown", () => {
  const t = new RetrainTriggers(triggerSettings({ minNewFrames: 100, cooldownMs: 10 * 60_000 }));
  assertEquals(t.check(state({ newFrames: 99 }), T0), undefined);
  assertEquals(t.check(state({ newFrames: 100 }), T0), {
    kind: "count",
    reason: "count: 100 new normal frames (at least 100)",
  });
  assertEquals(t.check(state({ newFrames: 500, training: true }), T0), undefined);
  assertEquals(t.check(state({ newFrames: 500, lastEndAt: T0 - 60_000 }), T0), undefined);
  assertEquals(t.check(state({ newFrames: 500, lastEndAt: T0 - 600_000 }), T0)?.kind, "count");
});

Deno.test("RetrainTriggers.check() fires drift above the bound once the window is full", () => {
  const t = new RetrainTriggers(triggerSettings({ drift: { window: 4, bound: 1, factor: null } }));
  assertEquals(t.check(state({ recentScores: [2, 2, 2] }), T0), undefined);
  assertEquals(t.check(state({ recentScores: [0.5, 0.9, 1, 0.8] }), T0), undefined);
  assertEquals(t.check(state({ recentScores: [0.5, 1.5, 1.2, 2] }), T0), {
    kind: "drift",
    reason: "drift: median score 1.35 of the last 4 normal frames > bound 1",
  });
});

Deno.test("RetrainTriggers.check() fires drift above factor x the promoted median", () => {
  const t = new RetrainTriggers(
    triggerSettings({ drift: { window: 3, bound: null, factor: 1.5 } }),
  );
  const scores = [0.7, 0.8, 0.9];
  assertEquals(t.check(state({ recentScores: scores }), T0), undefined); // no baseline
  assertEquals(t.check(state({ recentScores: scores, promotedMedian: 0.6 }), T0), undefined);
  assertEquals(t.check(state({ recentScores: scores, promotedMedian: 0.5 }), T0), {
    kind: "drift",
    reason: "drift: median score 0.8 of the last 3 normal frames > 1.5 x 0.5 at the last promotion",
  });
});

Deno.test("RetrainTriggers.check() gives manual first, then drift, count, daily, interval", () => {
  const t = new RetrainTriggers(triggerSettings({
    intervalMs: H,
    dailyAt: ["10:30"],
    minNewFrames: 1,
    drift: { window: 1, bound: 0, factor: null },
  }));
  const data = state({ newFrames: 5, recentScores: [1] });
  const now = T0 + 2 * H;
  assertEquals(t.check({ ...data, manual: "operator" }, now), {
    kind: "manual",
    reason: "manual: operator",
  });
  assertEquals(t.check(data, now)?.kind, "drift");
  assertEquals(t.check(state({ newFrames: 5 }), now)?.kind, "count");
  assertEquals(t.check(state(), now)?.kind, "daily");
  assertEquals(t.check(state({ lastStartAt: T0 + 0.75 * H }), now)?.kind, "interval");
  assertEquals(new RetrainTriggers(triggerSettings()).nextDue(state(), now), undefined);
});

Deno.test("retrainTrigger() names fired triggers as the lifecycle events do", () => {
  const kinds = ["manual", "drift", "count", "daily", "interval"] as const;
  assertEquals(kinds.map((kind) => retrainTrigger({ kind, reason: "" })), [
    "command",
    "drift",
    "count",
    "schedule",
    "schedule",
  ]);
});
