import { assertEquals, assertOk } from "../../tests/assert.ts";
import { parsePipeline } from "./load.ts";
import { learningNotice, learningPlan } from "./learning.ts";

const CAMERAS = `cameras:
  - name: a
    url: "lavfi:testsrc2"
  - name: b
    url: "lavfi:testsrc2"
    retrain: { enabled: false }
  - name: c
    url: "lavfi:testsrc2"
    enabled: false
`;

Deno.test("learningPlan() splits the cameras without a model into learning and untrained", () => {
  const p = parsePipeline(`${CAMERAS}retrain: { enabled: true, bootstrap: { frames: 12 } }\n`, "p");
  assertEquals(learningPlan(p), { learning: ["a"], untrained: ["b"] });
  const notice = learningNotice(p)!;
  assertOk(notice.includes("camera(s) a learn their scene first") && notice.includes("12"), notice);
});

Deno.test("learningPlan() has nobody learning with model.path or without retraining", () => {
  assertEquals(learningPlan(parsePipeline(CAMERAS, "p")), { learning: [], untrained: ["a", "b"] });
  const withModel = parsePipeline(
    `${CAMERAS}model: { path: m.pth }\nretrain: { enabled: true }\n`,
    "p",
  );
  assertEquals(learningPlan(withModel), { learning: [], untrained: [] });
  assertEquals(learningNotice(withModel), undefined);
});
