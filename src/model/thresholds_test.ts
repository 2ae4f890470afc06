import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { isAnomalous, normalizeScore, servedThresholds } from "./thresholds.ts";

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

Deno.test("servedThresholds() judges int8 scores by the int8 graph's own thresholds only", () => {
  const fp32 = { threshold: 1, min: 0, max: 2 };
  const int8Thresholds = { threshold: 1.2, min: 0.1, max: 1.2 };
  const int8 = {
    path: "m/model.int8-0.onnx",
    sha256: "0".repeat(64),
    calibration: { method: "minmax" as const, frames: 4, seconds: 1, createdAt: "x" },
    quantiles: { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 },
    thresholds: int8Thresholds,
  };
  assertEquals(servedThresholds({ thresholds: fp32, int8 }), fp32);
  assertEquals(servedThresholds({ thresholds: fp32, int8 }, "fp16"), fp32);
  assertEquals(servedThresholds({ thresholds: fp32, int8 }, "int8"), int8Thresholds);
  assertEquals(servedThresholds({ thresholds: fp32 }, "int8"), undefined);
});
