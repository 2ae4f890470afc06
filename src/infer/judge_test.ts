import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { judgeScore } from "./judge.ts";

const thresholds = { threshold: 2, min: 1, max: 5 };

Deno.test("judgeScore() uses the model's thresholds under the model policy", () => {
  const j = judgeScore(3, { policy: { policy: "model" }, scoreKind: "raw", thresholds });
  assertEquals([j.anomalous, j.threshold], [true, 2]);
  assertAlmostEquals(j.normalizedScore!, 0.75, 1e-12);
  assertEquals(judgeScore(2, { policy: { policy: "model" }, scoreKind: "raw", thresholds }), {
    anomalous: false,
    normalizedScore: 0.5,
    threshold: 2,
  });
});

Deno.test("judgeScore() never calls a frame anomalous without thresholds", () => {
  assertEquals(judgeScore(1e9, { policy: { policy: "model" }, scoreKind: "raw" }), {
    anomalous: false,
  });
});

Deno.test("judgeScore() compares the raw score with a fixed threshold", () => {
  const fixed = { policy: "fixed", value: 4 } as const;
  assertEquals(judgeScore(4.5, { policy: fixed, scoreKind: "raw" }), {
    anomalous: true,
    threshold: 4,
  });
  const j = judgeScore(3, { policy: fixed, scoreKind: "raw", thresholds });
  assertEquals([j.anomalous, j.threshold, j.normalizedScore], [false, 4, 0.25]);
});

Deno.test("judgeScore() trusts a normalized engine's label, else 0.5", () => {
  const model = { policy: "model" } as const;
  assertEquals(judgeScore(0.6, { policy: model, scoreKind: "normalized" }), {
    anomalous: true,
    normalizedScore: 0.6,
  });
  assertEquals(judgeScore(0.6, { policy: model, scoreKind: "normalized", label: false }), {
    anomalous: false,
    normalizedScore: 0.6,
  });
  const fixed = { policy: "fixed", value: 0.7 } as const;
  assertEquals(judgeScore(0.6, { policy: fixed, scoreKind: "normalized", label: true }), {
    anomalous: false,
    normalizedScore: 0.6,
  });
});
