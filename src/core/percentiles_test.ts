import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { median, nearestRank, RollingPercentiles } from "./percentiles.ts";

Deno.test("RollingPercentiles() reports zeros for an empty window", () => {
  const w = new RollingPercentiles(8);
  assertEquals(w.snapshot(), { p50: 0, p95: 0, p99: 0, count: 0, sum: 0, total: 0 });
});

Deno.test("RollingPercentiles() computes nearest-rank p50, p95 and p99", () => {
  const w = new RollingPercentiles(100);
  // 1..100 in a shuffled order: the percentiles are the values themselves.
  for (let i = 0; i < 100; i++) w.add(((i * 37) % 100) + 1);
  const s = w.snapshot();
  assertEquals([s.p50, s.p95, s.p99, s.count, s.total, s.sum], [50, 95, 99, 100, 100, 5050]);
});

Deno.test("RollingPercentiles() keeps only the last capacity samples but totals them all", () => {
  const w = new RollingPercentiles(4);
  for (const v of [1000, 1000, 1, 2, 3, 4]) w.add(v);
  const s = w.snapshot();
  assertEquals([s.p50, s.p99, s.count, s.total, s.sum], [2, 4, 4, 6, 2010]);
});

Deno.test("RollingPercentiles() ignores non-finite samples and clear() resets", () => {
  const w = new RollingPercentiles(4);
  w.add(Number.NaN);
  w.add(Infinity);
  w.add(5);
  assertEquals(w.snapshot().count, 1);
  w.clear();
  assertEquals(w.snapshot().total, 0);
});

Deno.test("RollingPercentiles() rejects a capacity that is not a positive integer", () => {
  assertThrows(() => new RollingPercentiles(0), RangeError, "Cannot make a percentile window");
  assertThrows(() => new RollingPercentiles(1.5), RangeError, "positive integer");
});

Deno.test("nearestRank() picks the smallest value covering the quantile", () => {
  assertEquals(nearestRank([10], 0.99), 10);
  assertEquals(nearestRank([1, 2], 0.5), 1);
  assertEquals(nearestRank([1, 2, 3], 0.5), 2);
  assertEquals(nearestRank([], 0.5), 0);
});

Deno.test("median() handles odd, even and empty inputs", () => {
  assertEquals(median([3, 1, 2]), 2);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  assertEquals(Number.isNaN(median([])), true);
});
