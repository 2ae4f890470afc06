import { InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import type { InferenceEngine, InferenceOutput } from "../infer/engine.ts";
import { assertAlmostEquals, assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { readCategory } from "./dataset.ts";
import { evaluate } from "./evaluate.ts";
import { writeFixtureCategory } from "./_test_utils.ts";

/**
 * An engine whose map is the input's red channel sampled at every second pixel (so maps
 * are half the input size) and whose score is the map's maximum: it finds the fixture's
 * bright squares perfectly.
 */
class BrightnessEngine implements InferenceEngine {
  readonly description = "brightness";
  readonly scoreKind = "raw" as const;
  readonly inputSize: readonly [number, number];
  batches = 0;
  constructor(size: number) {
    this.inputSize = [size, size];
  }
  run(batch: Tensor): Promise<InferenceOutput> {
    this.batches++;
    const [n = 0, , h = 0, w = 0] = batch.shape;
    const mh = h / 2;
    const mw = w / 2;
    const map = new Float32Array(n * mh * mw);
    const scores = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let y = 0; y < mh; y++) {
        for (let x = 0; x < mw; x++) {
          const v = batch.data[i * 3 * h * w + 2 * y * w + 2 * x]!;
          map[i * mh * mw + y * mw + x] = v;
          if (v > max) max = v;
        }
      }
      scores[i] = max;
    }
    return Promise.resolve({
      anomalyMap: { shape: [n, 1, mh, mw], data: map },
      predScore: { shape: [n, 1], data: scores },
    });
  }
  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("evaluate() scores a perfect detector at 1 and resizes masks to the maps", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeFixtureCategory(root, { size: 64, good: 3, defects: { scratch: 2, dent: 1 } });
    const engine = new BrightnessEngine(64);
    const r = await evaluate(engine, await readCategory(root), { batchSize: 4, keepImages: true });
    assertEquals(engine.batches, 2);
    assertEquals(r.mapSize, [32, 32]);
    assertEquals(r.metrics.image_auroc, 1);
    assertEquals(r.metrics.pixel_auroc, 1);
    assertAlmostEquals(r.metrics.aupro, 1, 1e-12);
    assertEquals(r.metrics.f1_max, 1);
    assertAlmostEquals(r.metrics.threshold, 250 / 255, 1e-6);
    assertEquals(Object.keys(r.metrics.per_defect).sort(), ["dent", "scratch"]);
    assertEquals(r.metrics.per_defect["scratch"], { images: 2, image_auroc: 1 });
    // Squares of side 8, 16 and 8 at 64 x 64 are 4 x 4, 8 x 8 and 4 x 4 at 32 x 32.
    assertEquals(r.counts, {
      images: 6,
      normal: 3,
      anomalous: 3,
      pixels: 6 * 32 * 32,
      anomalous_pixels: 96,
      regions: 3,
    });
    assertEquals(r.images.map((s) => s.image?.width), [64, 64, 64, 64, 64, 64]);
    assertOk(r.timing.inference_ms >= 0 && r.timing.metrics_ms >= 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("evaluate() resizes images to the engine's input size", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeFixtureCategory(root, { size: 64, good: 1, defects: { scratch: 1 } });
    const r = await evaluate(new BrightnessEngine(32), await readCategory(root));
    assertEquals(r.mapSize, [16, 16]);
    assertEquals(r.images.length, 2);
    assertEquals(r.images[0]!.image, undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("evaluate() needs normal and anomalous test images", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeFixtureCategory(root, { size: 16, good: 2, defects: {} });
    await assertRejects(
      async () => await evaluate(new BrightnessEngine(16), await readCategory(root)),
      InputError,
      "must include normal (test/good) and anomalous ones, got 2 normal of 2",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
