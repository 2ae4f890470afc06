import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { type AnomalyEvent, type EventSample, EventTracker } from "./events.ts";
import { DEFAULT_EVENT_RULES } from "./_test_utils.ts";

/** Feeds normalised scores, one frame every `stepMs` from t = 0; returns the events. */
function run(
  tracker: EventTracker,
  levels: readonly number[],
  stepMs = 100,
  camera = "cam",
): AnomalyEvent[] {
  const events: AnomalyEvent[] = [];
  levels.forEach((level, seq) => {
    const sample: EventSample = {
      camera,
      seq,
      at: 1_000_000 + seq * stepMs,
      score: level * 10,
      normalizedScore: level,
      anomalous: level >= 0.5,
    };
    const e = tracker.observe(sample);
    if (e) events.push(e);
  });
  return events;
}

function ids(): () => string {
  let n = 0;
  return () => `e${++n}`;
}

Deno.test("EventTracker() raises nothing for one noisy frame", () => {
  const tracker = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 300, newId: ids() });
  assertEquals(run(tracker, [0.1, 0.9, 0.1, 0.1, 0.2]), []);
  assertEquals(tracker.isActive("cam"), false);
});

Deno.test("EventTracker() starts once the anomaly lasted minDurationMs, from its first frame", () => {
  const tracker = new EventTracker({
    ...DEFAULT_EVENT_RULES,
    minDurationMs: 300,
    updateIntervalMs: 0,
    newId: ids(),
  });
  // frames every 100 ms: on at seq 1; 300 ms later is seq 4
  const events = run(tracker, [0.1, 0.6, 0.7, 0.8, 0.6, 0.6, 0.2]);
  assertEquals(events.map((e) => [e.type, e.id, e.startSeq, e.lastSeq]), [
    ["start", "e1", 1, 4],
    ["end", "e1", 1, 5],
  ]);
  const [start, end] = events;
  assertEquals(start!.durationMs, 300);
  assertEquals(start!.startedAt, 1_000_100);
  assertEquals(end!.durationMs, 400);
  assertEquals(end!.reason, "cleared");
  assertEquals(end!.peakNormalizedScore, 0.8);
  assertEquals(end!.peakScore, 8);
  assertEquals(end!.peakSeq, 3);
  assertEquals(end!.frames, 5);
});

Deno.test("EventTracker() keeps an anomaly across dips between the thresholds (hysteresis)", () => {
  const tracker = new EventTracker({
    ...DEFAULT_EVENT_RULES,
    onThreshold: 0.5,
    offThreshold: 0.4,
    minDurationMs: 0,
    updateIntervalMs: 0,
    newId: ids(),
  });
  const events = run(tracker, [0.6, 0.45, 0.55, 0.42, 0.6, 0.3, 0.45, 0.3]);
  assertEquals(events.map((e) => `${e.type}:${e.startSeq}-${e.lastSeq}`), [
    "start:0-0",
    "end:0-4",
  ]);
});

Deno.test("EventTracker() forgets a pending anomaly that drops below offThreshold", () => {
  const tracker = new EventTracker({
    ...DEFAULT_EVENT_RULES,
    minDurationMs: 250,
    offThreshold: 0.4,
    newId: ids(),
  });
  // 0-200 ms pending (too short), then cleared; a second run lasts long enough
  const events = run(tracker, [0.6, 0.6, 0.6, 0.3, 0.6, 0.6, 0.6, 0.6, 0.1]);
  assertEquals(events.map((e) => `${e.type}:${e.id}:${e.startSeq}`), [
    "start:e1:4",
    "end:e1:4",
  ]);
});

Deno.test("EventTracker() emits an update every updateIntervalMs while active", () => {
  const tracker = new EventTracker({
    ...DEFAULT_EVENT_RULES,
    minDurationMs: 0,
    updateIntervalMs: 250,
    newId: ids(),
  });
  const events = run(tracker, [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1]);
  // frames every 100 ms: updates 250 ms after the start (seq 3), then 250 ms after that
  assertEquals(events.map((e) => `${e.type}@${e.lastSeq}`), ["start@0", "update@3", "end@5"]);
  const update = events[1]!;
  assertEquals([update.id, update.durationMs, update.frames], [events[0]!.id, 300, 4]);
});

Deno.test("EventTracker() tracks cameras separately", () => {
  const tracker = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 0, newId: ids() });
  const a = run(tracker, [0.9, 0.9], 100, "a");
  const b = run(tracker, [0.1, 0.9], 100, "b");
  assertEquals(a.map((e) => `${e.camera}:${e.type}`), ["a:start"]);
  assertEquals(b.map((e) => `${e.camera}:${e.type}`), ["b:start"]);
  assertOk(tracker.isActive("a") && tracker.isActive("b"));
  const ended = tracker.endAll("shutdown");
  assertEquals(ended.map((e) => `${e.camera}:${e.type}:${e.reason}`), [
    "a:end:shutdown",
    "b:end:shutdown",
  ]);
  assertEquals(tracker.endAll("shutdown"), []);
});

Deno.test("EventTracker.end() ends an active anomaly and drops a pending one", () => {
  const tracker = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 1000, newId: ids() });
  run(tracker, [0.9, 0.9]);
  assertEquals(tracker.end("cam", "stream_lost"), undefined);
  const tracker2 = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 0, newId: ids() });
  run(tracker2, [0.9, 0.9]);
  assertEquals(tracker2.end("cam", "stream_lost")?.reason, "stream_lost");
});

Deno.test("EventTracker() uses the anomalous flag when there is no normalised score", () => {
  const tracker = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 0, newId: ids() });
  const sample = (seq: number, anomalous: boolean): EventSample => ({
    camera: "cam",
    seq,
    at: seq * 100,
    score: anomalous ? 5 : 1,
    anomalous,
  });
  assertEquals(tracker.observe(sample(0, false)), undefined);
  const start = tracker.observe(sample(1, true));
  assertEquals(start?.type, "start");
  assertEquals(start?.peakNormalizedScore, undefined);
  assertEquals(tracker.observe(sample(2, false))?.type, "end");
});

Deno.test("EventTracker() rejects an off threshold above the on threshold", () => {
  assertThrows(
    () => new EventTracker({ ...DEFAULT_EVENT_RULES, onThreshold: 0.5, offThreshold: 0.6 }),
    RangeError,
    "Cannot track anomaly events: off_threshold 0.6 is above on_threshold 0.5",
  );
  assertThrows(
    () => new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: -1 }),
    RangeError,
    "min_duration_ms",
  );
});
