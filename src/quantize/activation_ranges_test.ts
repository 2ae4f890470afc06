import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { HISTOGRAM_BINS, rangeOf, type TensorStats } from "./activation_ranges.ts";

/** Statistics of `values` as collectStats() bins them. */
function statsOf(values: readonly number[]): TensorStats {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const h = new Float64Array(HISTOGRAM_BINS);
  for (const v of values) {
    h[Math.min(HISTOGRAM_BINS - 1, Math.floor((v - lo) * HISTOGRAM_BINS / (hi - lo)))]!++;
  }
  return { min, max, histogram: h };
}

// A Relu-like tensor: many values in [0, 1], a rare outlier at 50.
const relu = [...Array.from({ length: 100_000 }, (_, i) => (i % 1000) / 1000), 50];

Deno.test("rangeOf() minmax is the observed range", () => {
  assertEquals(rangeOf({ min: -1, max: 3 }), { min: -1, max: 3 });
});

Deno.test("rangeOf() percentile clips a rare outlier and keeps the bulk", () => {
  const r = rangeOf(statsOf(relu), { method: "percentile", percentile: 99.99 });
  assertEquals(r.min, 0);
  assertOk(r.max >= 0.99 && r.max < 1.1, `max ${r.max}`);
  // At 100 nothing is clipped.
  assertAlmostEquals(
    rangeOf(statsOf(relu), { method: "percentile", percentile: 100 }).max,
    50,
    1e-9,
  );
});

Deno.test("rangeOf() percentile clips both tails of a signed tensor", () => {
  const signed = [...relu.map((v) => v - 0.5), -40];
  const r = rangeOf(statsOf(signed), { method: "percentile", percentile: 99.99 });
  assertOk(r.min < -0.45 && r.min > -0.6, `min ${r.min}`);
  assertOk(r.max > 0.45 && r.max < 0.6, `max ${r.max}`);
});

Deno.test("rangeOf() entropy clips a long sparse tail", () => {
  const r = rangeOf(statsOf(relu), { method: "entropy" });
  assertEquals(r.min, 0);
  assertOk(r.max < 10 && r.max >= 0.9, `max ${r.max}`);
});

Deno.test("rangeOf() throws without a histogram or with a bad percentile", () => {
  assertThrows(
    () => rangeOf({ min: 0, max: 1 }, { method: "entropy" }),
    RangeError,
    "no histogram",
  );
  assertThrows(
    () => rangeOf(statsOf(relu), { method: "percentile", percentile: 40 }),
    RangeError,
    "not in (50, 100]",
  );
});
