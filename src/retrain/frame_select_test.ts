import { assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import type { ScoredFrame } from "../core/frame.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { FrameSelector, thumbnail, thumbnailDistance } from "./frame_select.ts";

/** The gates as a pipeline file without `retrain.store` keys resolves them. */
const STORE = {
  quantile: DEFAULTS.retrain.store.quantile,
  minIntervalMs: DEFAULTS.retrain.store.min_interval_ms,
  eventGuardMs: DEFAULTS.retrain.store.event_guard_ms,
  duplicateThreshold: DEFAULTS.retrain.store.duplicate_threshold,
};

/** A 32 x 32 frame whose pixels are `fill` (or a gradient offset by `fill`). */
function scored(
  capturedAt: number,
  score: number,
  opts: { fill?: number; anomalous?: boolean; seq?: number } = {},
): ScoredFrame {
  const width = 32, height = 32;
  const rgb = new Uint8Array(width * height * 3).fill(opts.fill ?? 100);
  return {
    frame: { camera: "cam", seq: opts.seq ?? 0, capturedAt, width, height, rgb },
    score,
    anomalous: opts.anomalous ?? false,
    map: { shape: [1, 1, 1], data: new Float32Array(1) },
    modelVersion: "v1",
    batchSize: 1,
    inferenceMs: 1,
    scoredAt: capturedAt,
  } as ScoredFrame;
}

/** A selector with every gate open except the one under test. */
function selector(clock: { t: number }, overrides: Record<string, number> = {}): FrameSelector {
  return new FrameSelector({
    quantile: 1,
    minSamples: 0,
    minIntervalMs: 0,
    eventGuardMs: 0,
    duplicateThreshold: -1,
    now: () => clock.t,
    ...overrides,
  });
}

Deno.test("thumbnail() averages luma over 16 x 16 cells", () => {
  const t = thumbnail({ width: 32, height: 32, rgb: new Uint8Array(32 * 32 * 3).fill(200) });
  assertEquals(t.length, 256);
  assertEquals(t[0], 200);
  assertEquals(thumbnailDistance(t, new Uint8Array(256).fill(190)), 10);
  assertThrows(() => thumbnail({ width: 4, height: 4, rgb: new Uint8Array(3) }), RangeError);
});

Deno.test("FrameSelector() keeps only scores below the quantile of recent scores", () => {
  const clock = { t: 0 };
  const s = selector(clock, { quantile: 0.5, minSamples: 4 });
  // Warming up: the first four scores are only recorded.
  for (const [i, score] of [1, 2, 3, 4].entries()) {
    assertEquals(s.offer(scored(i, score, { fill: i * 40 })), []);
    assertEquals(s.lastSkip, "warming-up");
  }
  assertEquals(s.scoreBound, 2);
  assertEquals(s.offer(scored(10, 2.5, { fill: 5 })), []);
  assertEquals(s.lastSkip, "above-quantile");
  const kept = s.offer(scored(11, 1.5, { fill: 250 }));
  assertEquals(kept.map((k) => k.score), [1.5]);
  assertEquals(s.stats().skipped["above-quantile"], 1);
  assertEquals(s.stats().skipped["warming-up"], 4);
});

Deno.test("FrameSelector() keeps at most one frame per minIntervalMs", () => {
  const clock = { t: 0 };
  const s = selector(clock, { minIntervalMs: 1000 });
  assertEquals(s.offer(scored(0, 1, { fill: 0 })).length, 1);
  assertEquals(s.offer(scored(500, 1, { fill: 100 })).length, 0);
  assertEquals(s.lastSkip, "rate-limited");
  assertEquals(s.offer(scored(1000, 1, { fill: 200 })).length, 1);
});

Deno.test("FrameSelector() refuses frames near an anomaly, before and after it", () => {
  const clock = { t: 0 };
  const s = selector(clock, { eventGuardMs: 1000 });
  // A candidate captured at 0 waits out the guard...
  assertEquals(s.offer(scored(0, 1, { fill: 0 })), []);
  assertEquals(s.stats().pending, 1);
  // ...and an anomaly at 800 drops it.
  clock.t = 800;
  assertEquals(s.offer(scored(800, 9, { anomalous: true })), []);
  assertEquals(s.stats().pending, 0);
  // Frames within the guard after the anomaly are refused.
  clock.t = 1500;
  assertEquals(s.offer(scored(1500, 1, { fill: 50 })), []);
  assertEquals(s.lastSkip, "event-guard");
  // A frame well after it becomes a candidate and is released once the guard has passed.
  clock.t = 2000;
  assertEquals(s.offer(scored(2000, 1, { fill: 100 })), []);
  clock.t = 2999;
  assertEquals(s.release(), []);
  clock.t = 3000;
  assertEquals(s.release().map((k) => k.frame.capturedAt), [2000]);
  // An anomaly reported from elsewhere drops the waiting candidates near it.
  s.offer(scored(5000, 1, { fill: 200 }));
  s.noteAnomaly(5500);
  clock.t = 10_000;
  assertEquals(s.release(), []);
  assertEquals(s.stats().skipped["event-guard"], 3);
  assertEquals(s.stats().released, 1);
});

Deno.test("FrameSelector() skips near-duplicates of the last kept frames", () => {
  const clock = { t: 0 };
  const s = selector(clock, { duplicateThreshold: 3, duplicateHistory: 2 });
  assertEquals(s.offer(scored(0, 1, { fill: 100 })).length, 1);
  assertEquals(s.offer(scored(1, 1, { fill: 102 })).length, 0);
  assertEquals(s.lastSkip, "duplicate");
  assertEquals(s.offer(scored(2, 1, { fill: 110 })).length, 1);
  assertEquals(s.offer(scored(3, 1, { fill: 120 })).length, 1);
  // 100 has left the two-frame history, so it is no longer a duplicate.
  assertEquals(s.offer(scored(4, 1, { fill: 100 })).length, 1);
  assertEquals(s.stats().skipped.duplicate, 1);
});

Deno.test("FrameSelector() rejects out-of-range options", () => {
  assertThrows(() => new FrameSelector({ ...STORE, quantile: 0 }), RangeError, "quantile");
  assertThrows(() => new FrameSelector({ ...STORE, windowSize: 0 }), RangeError, "windowSize");
  assertThrows(
    () => new FrameSelector({ ...STORE, minIntervalMs: -1 }),
    RangeError,
    "minIntervalMs",
  );
  assertAlmostEquals(new FrameSelector(STORE).options.quantile, 0.5, 0);
});
