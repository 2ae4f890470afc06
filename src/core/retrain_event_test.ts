import { assertEquals } from "../../tests/assert.ts";
import { candidateOf, eventReason, type RetrainEvent } from "./retrain_event.ts";

const base = { key: "cam", at: 0, serving: "v1" };
const run = { ...base, trigger: "drift" as const, triggerReason: "drift: median 0.4" };
const figures = { normalFrames: 4, anomalousFrames: 0, flaggedFraction: 0, medianNormalized: 0.2 };

Deno.test("eventReason() gives the decision, else the note, else the trigger's words", () => {
  const events: RetrainEvent[] = [
    { ...run, state: "collecting", collected: 1, needed: 5, note: "new scene" },
    { ...run, state: "collecting", collected: 1, needed: 5 },
    { ...run, state: "training", note: "left out 1 of 9 frames" },
    { ...run, state: "training" },
    { ...run, state: "validating", candidate: "v2" },
    {
      ...run,
      state: "refused",
      candidate: "v2",
      decisionReason: "worse",
      validation: { candidate: figures },
    },
    { ...run, state: "failed", decisionReason: "Cannot train: exited with code 2" },
    { ...base, state: "idle", cancelled: true },
    { ...base, state: "idle", cancelled: false },
  ];
  assertEquals(events.map(eventReason), [
    "new scene",
    undefined,
    "left out 1 of 9 frames",
    "drift: median 0.4",
    "drift: median 0.4",
    "worse",
    "Cannot train: exited with code 2",
    "training cancelled",
    undefined,
  ]);
});

Deno.test("candidateOf() names the candidate of a validation or a refusal only", () => {
  const promoted: RetrainEvent = {
    ...run,
    state: "promoted",
    serving: "v2",
    from: "v1",
    decisionReason: "better",
    validation: { candidate: figures },
  };
  assertEquals(candidateOf({ ...run, state: "validating", candidate: "v2" }), "v2");
  assertEquals(
    candidateOf({
      ...run,
      state: "refused",
      candidate: "v3",
      decisionReason: "worse",
      validation: { candidate: figures },
    }),
    "v3",
  );
  assertEquals(candidateOf(promoted), undefined);
});
