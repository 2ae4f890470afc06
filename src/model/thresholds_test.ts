import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { isAnomalous, normalizeScore } from "./thresholds.ts";

const t = { threshold: 2, min: 1, max: 5 };

Deno.test("normalizeScore() maps the threshold to 0.5 and scales by the range", () => {
  assertAlmostEquals(normalizeScore(2, t), 0.5, 1e-12);
  assertAlmostEquals(normalizeScore(3, t), 0.75, 1e-12);
  assertAlmostEquals(normalizeScore(1, t), 0.25, 1e-12);
});

Deno.test("normalizeScore() clamps to [0, 1]", () => {
  assertEquals(normalizeScore(100, t), 1);
  assertEquals(normalizeScore(-100, t), 0);
});

Deno.test("isAnomalous() is strict at the threshold", () => {
  assertEquals(isAnomalous(2, t), false);
  assertEquals(isAnomalous(2.0001, t), true);
});
