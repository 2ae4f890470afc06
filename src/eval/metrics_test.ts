import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  auPro,
  auroc,
  f1AdaptiveThreshold,
  f1Max,
  labelComponents,
  pixelCurves,
  proCurve,
  rocCurve,
  thinCurve,
  trapezoid,
} from "./metrics.ts";

/** AUROC by counting pairs: P(pos > neg) + P(pos = neg) / 2. */
function pairAuroc(scores: readonly number[], labels: readonly number[]): number {
  let wins = 0;
  let pairs = 0;
  scores.forEach((p, i) => {
    if (labels[i] !== 1) return;
    scores.forEach((q, j) => {
      if (labels[j] !== 0) return;
      pairs++;
      wins += p > q ? 1 : p === q ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

/** A seeded generator in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("auroc() matches scikit-learn's documented example", () => {
  assertAlmostEquals(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75, 1e-12);
});

Deno.test("auroc() is 1 for a perfect ranking and 0 for an inverted one", () => {
  assertEquals(auroc([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]), 1);
  assertEquals(auroc([0.9, 0.8, 0.3, 0.1], [0, 0, 1, 1]), 0);
});

Deno.test("auroc() counts tied scores as one diagonal step (half a pair)", () => {
  // Pairs (pos, neg): (0.5, 0.5) = 1/2, (0.5, 0.2) = 1, (0.8, 0.5) = 1, (0.8, 0.2) = 1.
  assertAlmostEquals(auroc([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1]), 3.5 / 4, 1e-12);
  assertEquals(auroc([1, 1, 1, 1], [0, 1, 0, 1]), 0.5);
});

Deno.test("rocCurve() has one point per distinct score, from (0, 0) to (1, 1)", () => {
  const c = rocCurve([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1]);
  assertEquals([...c.thresholds], [Infinity, 0.8, 0.5, 0.2]);
  assertEquals([...c.fpr], [0, 0, 0.5, 1]);
  assertEquals([...c.tpr], [0, 0.5, 1, 1]);
});

Deno.test("auroc() agrees with pair counting on random scores with many ties", () => {
  const rand = lcg(7);
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 300; i++) {
    const label = rand() < 0.3 ? 1 : 0;
    labels.push(label);
    scores.push(Math.round((rand() + label * 0.4) * 10) / 10); // few distinct values
  }
  assertAlmostEquals(auroc(scores, labels), pairAuroc(scores, labels), 1e-12);
  assertAlmostEquals(
    auroc(Float32Array.from(scores), Uint8Array.from(labels)),
    pairAuroc([...Float32Array.from(scores)], labels),
    1e-12,
  );
});

Deno.test("auroc() on float32 scores orders negatives, signed zeros and infinities", () => {
  const rand = lcg(5);
  const scores = new Float32Array(2000);
  const labels = new Uint8Array(2000);
  const specials = [-Infinity, Infinity, -0, 0, -1e-30, 1e-30, -3.5, 3.5];
  for (let i = 0; i < scores.length; i++) {
    labels[i] = rand() < 0.4 ? 1 : 0;
    scores[i] = i < 64
      ? specials[i % specials.length]!
      : Math.round((rand() * 10 - 5 + labels[i]!) * 4) / 4;
  }
  assertAlmostEquals(auroc(scores, labels), pairAuroc([...scores], [...labels]), 1e-12);
  // The same scores as plain numbers take the comparison sort: the same curve.
  assertEquals([...rocCurve([...scores], labels).tpr], [...rocCurve(scores, labels).tpr]);
});

Deno.test("auroc() rejects one class, NaN, bad labels and length mismatches", () => {
  assertThrows(() => auroc([0.1, 0.2], [1, 1]), RangeError, "no negative");
  assertThrows(() => auroc([0.1, 0.2], [0, 0]), RangeError, "no positive");
  assertThrows(() => auroc([0.1, NaN], [0, 1]), RangeError, "NaN");
  assertThrows(() => auroc([0.1, 0.2], [0, 2]), RangeError, "expected 0 or 1");
  assertThrows(() => auroc([0.1], [0, 1]), RangeError, "1 scores for 2 labels");
});

Deno.test("f1AdaptiveThreshold() is 3.3 for anomalib's example", () => {
  assertEquals(f1AdaptiveThreshold([2.3, 1.6, 2.6, 7.9, 3.3], [0, 0, 0, 1, 1]), 3.3);
  const r = f1Max([2.3, 1.6, 2.6, 7.9, 3.3], [0, 0, 0, 1, 1]);
  assertEquals(r, { f1: 1, threshold: 3.3, precision: 1, recall: 1 });
});

Deno.test("f1Max() treats ties as one threshold and keeps the lowest best threshold", () => {
  // t = 2: P 1, R 1/2, F1 2/3. t = 1: P 2/3, R 1, F1 0.8.
  const r = f1Max([1, 1, 2], [0, 1, 1]);
  assertAlmostEquals(r.f1, 0.8, 1e-12);
  assertEquals(r.threshold, 1);
  // Equal maxima: t = 4: P 1, R 1/2, F1 2/3; t = 3: F1 1/2; t = 2: F1 2/5; t = 1: P 1/2,
  // R 1, F1 2/3. The lowest threshold of the two wins, as torch's argmax over ascending ones.
  const s = f1Max([4, 3, 2, 1], [1, 0, 0, 1]);
  assertEquals(s.threshold, 1);
  assertAlmostEquals(s.f1, 2 / 3, 1e-12);
  assertThrows(() => f1Max([1, 2], [0, 0]), RangeError, "no positive");
});

Deno.test("trapezoid() integrates, and interpolates at xMax", () => {
  assertEquals(trapezoid([0, 0.5, 1], [0, 1, 1]), 0.75);
  assertEquals(trapezoid([0, 0.5, 1], [0, 1, 1], { xMax: 0.25 }), 0.0625);
  assertEquals(trapezoid([0, 0, 0.5], [0, 1, 1], { xMax: 0.5 }), 0.5);
});

Deno.test("labelComponents() joins diagonal pixels with 8 neighbours, not with 4", () => {
  // deno-fmt-ignore
  const mask = Uint8Array.from([
    1, 0, 0,
    0, 1, 0,
    0, 0, 1,
  ]);
  const eight = labelComponents(mask, { width: 3, height: 3 });
  assertEquals(eight.count, 1);
  assertEquals([...eight.sizes], [3]);
  const four = labelComponents(mask, { width: 3, height: 3 }, { connectivity: 4 });
  assertEquals(four.count, 3);
  assertEquals([...four.labels], [1, 0, 0, 0, 2, 0, 0, 0, 3]);
});

// One 4 x 4 image: region A = pixel 0 (1 pixel), region B = pixels 6, 7, 11 (3 pixels),
// 12 normal pixels.
// deno-fmt-ignore
const MASK = Uint8Array.from([
  1, 0, 0, 0,
  0, 0, 1, 1,
  0, 0, 0, 1,
  0, 0, 0, 0,
]);
// deno-fmt-ignore
const MAP = Float32Array.from([
  0.9, 0.7, 0.5, 0.1,
  0.1, 0.1, 0.8, 0.6,
  0.1, 0.1, 0.1, 0.2,
  0.1, 0.1, 0.1, 0.1,
]);

Deno.test("proCurve() averages the overlap of each region against the normal-pixel FPR", () => {
  const c = proCurve(MAP, MASK, { width: 4, height: 4 });
  const f = (a: Float64Array) => [...a].map((v) => Math.round(v * 1e6) / 1e6);
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  // t = 0.9: A 1, B 0 -> PRO 1/2, FPR 0.    t = 0.8: B 1/3 -> PRO 2/3.
  // t = 0.7: one false positive -> FPR 1/12. t = 0.6: B 2/3 -> PRO 5/6.
  // t = 0.5: FPR 2/12.                       t = 0.2: B 1 -> PRO 1.   t = 0.1: FPR 1.
  assertEquals(f(c.thresholds), [Infinity, 0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.1].map(r));
  assertEquals(f(c.fpr), [0, 0, 0, 1 / 12, 1 / 12, 2 / 12, 2 / 12, 1].map(r));
  assertEquals(f(c.tpr), [0, 1 / 2, 2 / 3, 2 / 3, 5 / 6, 5 / 6, 1, 1].map(r));
});

Deno.test("auPro() integrates the PRO curve up to 30 % FPR and normalises by 0.3", () => {
  // 2/3 * 1/12 + 5/6 * 1/12 + 1 * (0.3 - 1/6) = 93/360; / 0.3 = 31/36.
  assertAlmostEquals(auPro(MAP, MASK, { width: 4, height: 4 }), 31 / 36, 1e-9);
  // Up to 10 % FPR: 2/3 * 1/12 + 5/6 * (0.1 - 1/12) = 1/18 + 1/72 = 5/72; / 0.1.
  assertAlmostEquals(auPro(MAP, MASK, { width: 4, height: 4, fprLimit: 0.1 }), 50 / 72, 1e-9);
  // A second, normal image scoring 0 everywhere adds 16 normal pixels below every
  // threshold but the new lowest one: the FPRs become counts / 28 instead of / 12.
  const maps = new Float32Array(32);
  maps.set(MAP);
  const masks = new Uint8Array(32);
  masks.set(MASK);
  const c = proCurve(maps, masks, { width: 4, height: 4 });
  assertAlmostEquals(c.fpr[3]!, 1 / 28, 1e-9);
  assertThrows(() => auPro(MAP, MASK, { width: 4, height: 4, fprLimit: 0 }), RangeError, "limit");
  assertThrows(() => proCurve(MAP, MASK, { width: 3, height: 4 }), RangeError, "3x4");
});

Deno.test("proCurve() agrees with the overlap computed region by region", () => {
  const rand = lcg(3);
  const w = 24;
  const h = 16;
  const images = 3;
  const maps = new Float32Array(w * h * images);
  const masks = new Uint8Array(w * h * images);
  for (let i = 0; i < images; i++) {
    // Two rectangles per anomalous image (the last image is normal).
    if (i < images - 1) {
      for (const [x0, y0, rw, rh] of [[2, 2, 3 + i, 2], [12, 6, 6, 5 + i]] as const) {
        for (let y = y0; y < y0 + rh; y++) {
          for (let x = x0; x < x0 + rw; x++) masks[i * w * h + y * w + x] = 1;
        }
      }
    }
  }
  for (let p = 0; p < maps.length; p++) {
    maps[p] = Math.round((rand() + masks[p]! * 0.5) * 20) / 20;
  }
  const c = proCurve(maps, masks, { width: w, height: h });
  // Regions by hand: per image, two rectangles.
  const regions: number[][] = [];
  for (let i = 0; i < images - 1; i++) {
    const comps = labelComponents(masks.subarray(i * w * h, (i + 1) * w * h), {
      width: w,
      height: h,
    });
    assertEquals(comps.count, 2);
    for (let k = 1; k <= comps.count; k++) {
      const px: number[] = [];
      comps.labels.forEach((l, p) => {
        if (l === k) px.push(i * w * h + p);
      });
      regions.push(px);
    }
  }
  const normal = [...masks.keys()].filter((p) => masks[p] === 0);
  for (let j = 1; j < c.thresholds.length; j++) {
    const t = c.thresholds[j]!;
    const pro = regions.reduce((s, px) =>
      s + px.filter((p) => maps[p]! >= t).length / px.length, 0) /
      regions.length;
    const fpr = normal.filter((p) => maps[p]! >= t).length / normal.length;
    assertAlmostEquals(c.tpr[j]!, pro, 1e-9);
    assertAlmostEquals(c.fpr[j]!, fpr, 1e-9);
  }
});

Deno.test("auroc() scores 5.4 million pixels", () => {
  const n = 83 * 256 * 256;
  const rand = lcg(11);
  const scores = new Float32Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = rand() < 0.05 ? 1 : 0;
    scores[i] = rand() + labels[i]! * 0.5;
  }
  const a = auroc(scores, labels);
  assertAlmostEquals(a, 0.875, 0.005); // P(U + 0.5 > V) for U, V uniform on [0, 1)
});

Deno.test("thinCurve() keeps the ends and at most about the asked number of points", () => {
  const n = 10_000;
  const scores = Float64Array.from({ length: n }, (_, i) => i);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 2);
  const t = thinCurve(rocCurve(scores, labels), 100);
  assertOk(t.fpr.length <= 101 && t.fpr.length > 50, `${t.fpr.length} points`);
  assertEquals([t.fpr[0], t.tpr[0]], [0, 0]);
  assertEquals([t.fpr.at(-1), t.tpr.at(-1)], [1, 1]);
});

Deno.test("pixelCurves() equals rocCurve() and proCurve() with one sort", () => {
  const rand = lcg(9);
  const maps = new Float32Array(2 * 16);
  maps.set(MAP);
  for (let p = 16; p < 32; p++) maps[p] = Math.round(rand() * 10) / 10;
  const masks = new Uint8Array(32);
  masks.set(MASK);
  masks[31] = 1; // a one-pixel region in the second image
  const both = pixelCurves(maps, masks, { width: 4, height: 4 });
  assertEquals(both.regions, 3);
  assertEquals(both.roc, rocCurve(maps, masks));
  assertEquals(both.pro, proCurve(maps, masks, { width: 4, height: 4 }));
});
