import { assertEquals } from "../../tests/assert.ts";
import { parseTrainEvent, type TrainEvent, trainEventLine } from "./progress_event.ts";

Deno.test("parseTrainEvent() reads back every event that trainEventLine() writes", () => {
  const events: TrainEvent[] = [
    { type: "progress", step: 40, total: 250, loss: 7.3454, eta: "7m34s", etaMs: 454_000 },
    { type: "progress", step: 3, total: 9 },
    { type: "done", step: 9, total: 9, interrupted: false, checkpointDir: "c", out: "m" },
    { type: "done", step: 4, total: 9, interrupted: true, checkpointDir: "c" },
    { type: "error", message: "Cannot train: no images in d" },
  ];
  for (const e of events) assertEquals(parseTrainEvent(trainEventLine(e)), e);
});

Deno.test("parseTrainEvent() ignores log lines and JSON of another shape", () => {
  assertEquals(parseTrainEvent("info  step 40/250 loss 7.3454 ETA 7m34s"), undefined);
  assertEquals(parseTrainEvent(""), undefined);
  assertEquals(parseTrainEvent("{not json"), undefined);
  assertEquals(parseTrainEvent("[1, 2]"), undefined);
  assertEquals(parseTrainEvent('{"type":"progress","step":"4","total":9}'), undefined);
  assertEquals(parseTrainEvent('{"type":"progress","step":-1,"total":9}'), undefined);
  assertEquals(parseTrainEvent('{"type":"progress","step":1,"total":9,"loss":"x"}'), undefined);
  assertEquals(parseTrainEvent('{"type":"progress","step":1,"total":9,"etaMs":-5}'), undefined);
  assertEquals(parseTrainEvent('{"type":"done","step":1,"total":9}'), undefined);
  assertEquals(parseTrainEvent('{"type":"error"}'), undefined);
  assertEquals(parseTrainEvent('{"type":"hello","step":1}'), undefined);
});

Deno.test("parseTrainEvent() keeps only its type's fields and drops a diverged loss", () => {
  assertEquals(
    parseTrainEvent('{"type":"progress","step":2,"total":9,"loss":null,"extra":true}'),
    { type: "progress", step: 2, total: 9 },
  );
  // JSON.stringify writes NaN as null.
  assertEquals(
    parseTrainEvent(trainEventLine({ type: "progress", step: 2, total: 9, loss: NaN })),
    { type: "progress", step: 2, total: 9 },
  );
});
