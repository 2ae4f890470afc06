import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import type { InferenceEngine, InferenceOutput } from "../infer/engine.ts";
import { createOnnxEngine } from "../infer/onnx/engine.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { DEFAULTS } from "../config/defaults.ts";
import {
  decidePromotion,
  modelFigures,
  resolveMargins,
  scoreFrames,
  validateCandidate,
} from "./validate.ts";

const T = { threshold: 1, min: 0, max: 2 };

/** The margins as a pipeline file without `retrain.promotion.margins` resolves them. */
const MARGINS = {
  flaggedFraction: DEFAULTS.retrain.promotion.margins.flagged,
  medianNormalized: DEFAULTS.retrain.promotion.margins.median_normalized,
  detectedFraction: DEFAULTS.retrain.promotion.margins.detected,
  auroc: DEFAULTS.retrain.promotion.margins.auroc,
};

/** n scores: `flagged` of them at 1.5 (above the threshold), the rest at `low`. */
function scores(n: number, flagged: number, low = 0.4): number[] {
  return Array.from({ length: n }, (_, i) => (i < flagged ? 1.5 : low));
}

Deno.test("modelFigures() computes flagged share, median, detection and AUROC", () => {
  const f = modelFigures({ normal: [0.2, 0.4, 1.2, 0.6], anomalous: [1.5, 0.5], thresholds: T });
  assertEquals(f.normalFrames, 4);
  assertEquals(f.flaggedFraction, 0.25);
  // normalised: (s - 1) / 2 + 0.5 -> 0.1, 0.2, 0.6, 0.3; median 0.25
  assertAlmostEquals(f.medianNormalized, 0.25, 1e-12);
  assertEquals(f.anomalousFrames, 2);
  assertEquals(f.detectedFraction, 0.5);
  // pairs (a > n): 1.5 beats all 4, 0.5 beats 0.2 and 0.4: 6 of 8
  assertAlmostEquals(f.auroc!, 0.75, 1e-12);
});

Deno.test("decidePromotion() promotes the first model of a camera", () => {
  const d = decidePromotion({ normal: scores(50, 1), thresholds: T }, undefined, MARGINS);
  assertOk(d.promote);
  assertEquals(d.current, undefined);
  assertOk(d.reason.startsWith("no current model: candidate flags 2 % of held-out"), d.reason);
});

Deno.test("decidePromotion() refuses a candidate that flags more normal frames", () => {
  const d = decidePromotion(
    { normal: scores(50, 6), thresholds: T },
    { normal: scores(50, 1), thresholds: T },
    MARGINS,
  );
  assertEquals(d.promote, false);
  assertEquals(
    d.reason,
    "candidate flags 12 % of held-out normal frames vs 2 % for the current model (margin 5 %)",
  );
  assertEquals(d.refusals.length, 1);
  assertEquals(d.candidate.flaggedFraction, 0.12);
  assertEquals(d.current?.flaggedFraction, 0.02);
});

Deno.test("decidePromotion() names the candidate's int8 graph when it was validated", () => {
  const d = decidePromotion(
    { normal: scores(20, 8), anomalous: [0.4, 0.4], thresholds: T, name: "candidate's int8 graph" },
    { normal: scores(20, 1), anomalous: [1.5, 1.5], thresholds: T },
    MARGINS,
  );
  assertEquals(d.promote, false);
  assertEquals(d.refusals, [
    "candidate's int8 graph flags 40 % of held-out normal frames vs 5 % for the current model " +
    "(margin 5 %)",
    "candidate's int8 graph detects 0 of 2 frames marked anomalous (0 %) vs 100 % for the " +
    "current model (margin 10 %)",
    // 12 normal frames tie with both anomalous ones (0.5 each): 12 / 40; the current model's
    // one flagged normal frame ties with them: 39 / 40.
    "candidate's int8 graph's AUROC on frames marked anomalous is 0.30 vs 0.97 for the current " +
    "model (margin 0.02)",
  ]);
  const first = decidePromotion(
    { normal: scores(20, 0), thresholds: T, name: "candidate's int8 graph" },
    undefined,
    MARGINS,
  );
  assertOk(first.reason.startsWith("no current model: candidate's int8 graph flags 0 %"));
});

Deno.test("decidePromotion() accepts a candidate within the margin", () => {
  const d = decidePromotion(
    { normal: scores(100, 7), thresholds: T },
    { normal: scores(100, 2), thresholds: T },
    MARGINS,
  );
  assertOk(d.promote, d.reason);
  assertOk(d.reason.includes("candidate flags 7 % of held-out normal frames vs 2 %"), d.reason);
});

Deno.test("decidePromotion() promotes a candidate that fixes a drifted scene", () => {
  // The scene changed: the current model flags most new normal frames, the candidate none.
  const d = decidePromotion(
    { normal: scores(20, 0, 0.3), thresholds: { threshold: 0.8, min: 0.1, max: 1.1 } },
    { normal: scores(20, 15), thresholds: T },
    MARGINS,
  );
  assertOk(d.promote, d.reason);
  assertEquals(d.refusals, []);
});

Deno.test("decidePromotion() compares each model against its own thresholds", () => {
  // Same relative position to their thresholds, very different raw scales.
  const d = decidePromotion(
    { normal: [40, 50, 60], thresholds: { threshold: 100, min: 0, max: 200 } },
    { normal: [0.4, 0.5, 0.6], thresholds: T },
    MARGINS,
  );
  assertOk(d.promote, d.reason);
  assertAlmostEquals(d.candidate.medianNormalized, d.current!.medianNormalized, 1e-12);
});

Deno.test("decidePromotion() refuses a higher median normalised normal score", () => {
  const d = decidePromotion(
    { normal: scores(10, 0, 0.9), thresholds: T },
    { normal: scores(10, 0, 0.2), thresholds: T },
    MARGINS,
  );
  assertEquals(d.promote, false);
  assertEquals(
    d.reason,
    "candidate's median normalised score on held-out normal frames is 0.45 vs 0.10 for the " +
      "current model (margin 0.10)",
  );
  assertOk(
    decidePromotion(
      { normal: scores(10, 0, 0.9), thresholds: T },
      { normal: scores(10, 0, 0.2), thresholds: T },
      { ...MARGINS, medianNormalized: 0.5 },
    ).promote,
  );
});

Deno.test("decidePromotion() refuses a candidate that misses marked anomalies", () => {
  const normal = scores(10, 0);
  const d = decidePromotion(
    { normal, anomalous: [1.5, 0.35, 0.3, 0.2], thresholds: T },
    { normal, anomalous: [1.5, 1.6, 1.7, 1.8], thresholds: T },
    MARGINS,
  );
  assertEquals(d.promote, false);
  assertEquals(d.refusals.length, 2);
  assertEquals(
    d.refusals[0],
    "candidate detects 1 of 4 frames marked anomalous (25 %) vs 100 % for the current model " +
      "(margin 10 %)",
  );
  assertOk(
    d.refusals[1]!.startsWith("candidate's AUROC on frames marked anomalous is 0.25 vs 1.00 "),
  );
  assertEquals(d.reason, d.refusals.join("; "));
});

Deno.test("decidePromotion() rejects unusable inputs", () => {
  assertThrows(
    () => decidePromotion({ normal: [], thresholds: T }, undefined, MARGINS),
    RangeError,
    "no held-out normal frames",
  );
  assertThrows(
    () => decidePromotion({ normal: [NaN], thresholds: T }, undefined, MARGINS),
    RangeError,
    "NaN",
  );
  assertThrows(
    () =>
      decidePromotion({ normal: [1, 2], thresholds: T }, { normal: [1], thresholds: T }, MARGINS),
    RangeError,
    "different frames",
  );
  assertThrows(
    () =>
      decidePromotion({ normal: [1], thresholds: T }, undefined, {
        ...MARGINS,
        minNormalFrames: 5,
      }),
    RangeError,
    "at least 5",
  );
  assertThrows(() => resolveMargins({ ...MARGINS, auroc: -1 }), RangeError, "auroc");
  assertEquals(resolveMargins(MARGINS), {
    flaggedFraction: 0.05,
    medianNormalized: 0.1,
    detectedFraction: 0.1,
    auroc: 0.02,
    minNormalFrames: 1,
  });
});

/** A fake engine whose score is the mean of the frame, to test batching cheaply. */
function meanEngine(kind: "raw" | "normalized" = "raw"): InferenceEngine & { runs: number[] } {
  const runs: number[] = [];
  return {
    description: "mean",
    scoreKind: kind,
    inputSize: [2, 2],
    runs,
    run(batch: Tensor): Promise<InferenceOutput> {
      const n = batch.shape[0]!;
      runs.push(n);
      const size = batch.data.length / n;
      const pred = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < size; j++) sum += batch.data[i * size + j]!;
        pred[i] = sum / size;
      }
      return Promise.resolve({ anomalyMap: tensor([n, 1, 2, 2]), predScore: tensor([n, 1], pred) });
    },
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

function flat(value: number, batched = false): Tensor {
  return tensor(batched ? [1, 3, 2, 2] : [3, 2, 2], new Float32Array(12).fill(value));
}

Deno.test("scoreFrames() scores frames in order, in batches", async () => {
  const engine = meanEngine();
  const frames = [0.1, 0.2, 0.3, 0.4, 0.5].map((v, i) => flat(v, i === 2));
  const out = await scoreFrames(engine, frames, { batchSize: 2 });
  assertEquals(engine.runs, [2, 2, 1]);
  assertEquals([...out].map((s) => Math.round(s * 10) / 10), [0.1, 0.2, 0.3, 0.4, 0.5]);
  const abort = new AbortController();
  abort.abort(new Error("stop"));
  let stopped = false;
  await scoreFrames(engine, frames, { signal: abort.signal }).catch(() => stopped = true);
  assertOk(stopped);
});

Deno.test("validateCandidate() judges normalised engines against 0.5", async () => {
  const frames = { normal: [flat(0.2), flat(0.3)], anomalous: [flat(0.9)] };
  const d = await validateCandidate(
    { engine: meanEngine("normalized"), thresholds: { threshold: 100, min: 0, max: 1 } },
    { engine: meanEngine(), thresholds: { threshold: 0.5, min: 0, max: 1 } },
    { frames, margins: MARGINS },
  );
  assertOk(d.promote, d.reason);
  assertEquals(d.candidate.detectedFraction, 1);
});

Deno.test("validateCandidate() runs ONNX engines of both models on real frames", async () => {
  await using current = await createOnnxEngine(syntheticModel(undefined, 0));
  await using candidate = await createOnnxEngine(syntheticModel(undefined, 1));
  const [h, w] = current.inputSize;
  const frame = (seed: number) => {
    const data = new Float32Array(3 * h * w);
    for (let i = 0; i < data.length; i++) data[i] = ((i * 7919 + seed * 104729) % 1000) / 1000;
    return tensor([3, h, w], data);
  };
  const frames = { normal: [frame(1), frame(2)], anomalous: [frame(3)] };
  // Thresholds that put each model's threshold above all its scores: nothing flagged.
  const d = await validateCandidate(
    { engine: candidate, thresholds: { threshold: 1e9, min: 0, max: 1 } },
    { engine: current, thresholds: { threshold: 1e9, min: 0, max: 1 } },
    { frames, margins: MARGINS, batchSize: 2 },
  );
  assertEquals(d.candidate.normalFrames, 2);
  assertEquals(d.candidate.flaggedFraction, 0);
  assertEquals(d.current?.anomalousFrames, 1);
  assertOk(d.promote, d.reason);
  assertOk(Number.isFinite(d.candidate.auroc!) && Number.isFinite(d.current!.auroc!));
  assertOk(d.candidate.medianNormalized === 0 && d.current!.medianNormalized === 0);
});
