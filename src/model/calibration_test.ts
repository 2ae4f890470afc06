import { assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { calibrationFromMaps, type RawMaps } from "./calibration.ts";

Deno.test("calibrationFromMaps() takes the 0.9 / 0.995 quantiles and the highest score", () => {
  const maps: RawMaps[] = [0, 1].map((k) => {
    const st = new Float32Array(200).map((_, i) => i + k * 200);
    const ae = new Float32Array(200).map((_, i) => 2 * (i + k * 200));
    return { st: { shape: [1, 1, 10, 20], data: st }, ae: { shape: [1, 1, 10, 20], data: ae } };
  });
  const c = calibrationFromMaps(maps);
  // 400 values 0..399: q = 0.9 -> rank 359.1 -> 359.1; q = 0.995 -> rank 397.005.
  assertAlmostEquals(c.qaSt, 359.1, 1e-3);
  assertAlmostEquals(c.qbSt, 397.005, 1e-3);
  assertAlmostEquals(c.qaAe, 718.2, 2e-3);
  // Image 1's maximum: st 399, ae 798 -> 0.05 (399 - 359.1) / 37.905 twice.
  const top = 0.1 * (399 - 359.1) / (397.005 - 359.1);
  assertAlmostEquals(c.thresholds.threshold, top, 1e-5);
  assertAlmostEquals(c.thresholds.max, top, 1e-5);
  const low = 0.1 * (199 - 359.1) / (397.005 - 359.1);
  assertAlmostEquals(c.thresholds.min, low, 1e-5);
  assertEquals(c.images, 2);
  assertThrows(() => calibrationFromMaps([]), RangeError, "no images");
});
