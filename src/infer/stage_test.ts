import type { Frame, ScoredFrame } from "../core/frame.ts";
import { createLogger } from "../core/log.ts";
import type { Tensor } from "../core/tensor.ts";
import type { InferenceEngine, InferenceOutput } from "./engine.ts";
import { createOnnxEngine } from "./onnx/engine.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { assertAlmostEquals, assertEquals, assertOk } from "../../tests/assert.ts";
import { Batcher } from "../batch/batcher.ts";
import { InferenceStage } from "./stage.ts";

/** The pipeline file's default policy (`model.threshold`). */
const MODEL_POLICY = { policy: "model" } as const;

/**
 * A stand-in engine: frame i's score is its first red byte / 255 and its map is filled
 * with that score. `gate` holds runs until released; `fail` makes a run throw.
 */
class FakeEngine implements InferenceEngine {
  readonly description: string;
  readonly scoreKind: "raw" | "normalized";
  readonly inputSize = [2, 2] as const;
  calls = 0;
  fail: Error | undefined;
  gate: Promise<void> | undefined;
  labels: Uint8Array | undefined;

  constructor(name = "fake", scoreKind: "raw" | "normalized" = "raw") {
    this.description = name;
    this.scoreKind = scoreKind;
  }

  async run(batch: Tensor): Promise<InferenceOutput> {
    this.calls++;
    await this.gate;
    if (this.fail) throw this.fail;
    const [n, , h, w] = batch.shape as [number, number, number, number];
    const scores = new Float32Array(n);
    const map = new Float32Array(n * h * w);
    for (let i = 0; i < n; i++) {
      scores[i] = batch.data[i * 3 * h * w]!;
      map.fill(scores[i]!, i * h * w, (i + 1) * h * w);
    }
    return {
      anomalyMap: { shape: [n, 1, h, w], data: map },
      predScore: { shape: [n, 1], data: scores },
      ...(this.labels ? { predLabel: this.labels } : {}),
    };
  }

  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}

function frame(camera: string, seq: number, red = 0, size = 2): Frame {
  const rgb = new Uint8Array(size * size * 3);
  rgb[0] = red;
  return { camera, seq, capturedAt: 1000 + seq, width: size, height: size, rgb };
}

function ids(scored: readonly ScoredFrame[]): string[] {
  return scored.map((s) => `${s.frame.camera}${s.frame.seq}`);
}

function run(stage: InferenceStage, batches: Frame[][]): Promise<ScoredFrame[]> {
  return Array.fromAsync(ReadableStream.from(batches).pipeThrough(stage));
}

Deno.test("InferenceStage() emits one scored frame per frame, in batch order", async () => {
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: new FakeEngine(),
    model: { version: "v1" },
    now: () => 42,
  });
  const out = await run(stage, [[frame("a", 0, 51), frame("b", 0, 102)], [frame("a", 1, 255)]]);
  assertEquals(ids(out), ["a0", "b0", "a1"]);
  assertEquals(out.map((s) => s.batchSize), [2, 2, 1]);
  assertAlmostEquals(out[1]!.score, 0.4, 1e-6);
  const first = out[0]!;
  assertEquals([first.map.shape, first.map.data[3], first.modelVersion, first.scoredAt], [
    [1, 2, 2],
    first.score,
    "v1",
    42,
  ]);
  const s = stage.stats();
  assertEquals([s.batches, s.frames, s.meanBatchSize, s.batchMs.count], [2, 3, 1.5, 2]);
});

Deno.test("InferenceStage() judges scores with the model's thresholds", async () => {
  const stage = new InferenceStage({
    engine: new FakeEngine(),
    model: { version: "v1", thresholds: { threshold: 0.5, min: 0, max: 1 } },
    threshold: MODEL_POLICY,
  });
  const out = await run(stage, [[frame("a", 0, 51), frame("a", 1, 204)]]);
  assertEquals(out.map((s) => [s.anomalous, s.threshold]), [[false, 0.5], [true, 0.5]]);
  assertAlmostEquals(out[1]!.normalizedScore!, 0.8, 1e-6);
});

Deno.test("InferenceStage() uses a fixed threshold when asked", async () => {
  const stage = new InferenceStage({
    engine: new FakeEngine(),
    model: { version: "v1", thresholds: { threshold: 0.9, min: 0, max: 1 } },
    threshold: { policy: "fixed", value: 0.1 },
  });
  const out = await run(stage, [[frame("a", 0, 51)]]);
  assertEquals([out[0]!.anomalous, out[0]!.threshold], [true, 0.1]);
});

Deno.test("InferenceStage() never calls a frame anomalous without thresholds, and says so once", async () => {
  const lines: string[] = [];
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: new FakeEngine(),
    model: { version: "untrained" },
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  const out = await run(stage, [[frame("a", 0, 255)], [frame("a", 1, 255)]]);
  assertEquals(out.map((s) => [s.anomalous, s.threshold, s.normalizedScore]), [
    [false, undefined, undefined],
    [false, undefined, undefined],
  ]);
  assertEquals(lines.filter((l) => l.includes("model has no thresholds")).length, 1);
});

Deno.test("InferenceStage() takes a normalized engine's own labels", async () => {
  const engine = new FakeEngine("anomalib", "normalized");
  engine.labels = Uint8Array.from([1, 0]);
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine,
    model: { version: "export" },
  });
  const out = await run(stage, [[frame("a", 0, 0), frame("a", 1, 255)]]);
  assertEquals(out.map((s) => s.anomalous), [true, false]);
  assertEquals(out[1]!.normalizedScore, 1);
});

Deno.test("InferenceStage() drops a failing batch, counts it and carries on", async () => {
  const engine = new FakeEngine();
  const lines: string[] = [];
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine,
    model: { version: "v1" },
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  const writer = stage.writable.getWriter();
  const collected = Array.fromAsync(stage.readable);
  engine.fail = new Error("Cannot run batch: device lost");
  await writer.write([frame("a", 0), frame("b", 0)]);
  await writer.write([frame("a", 1)]);
  engine.fail = undefined;
  await writer.write([frame("a", 2)]);
  await writer.write([frame("a", 3, 0, 3)]); // wrong size for the others: batch still scored
  await writer.write([frame("a", 4, 0, 2), frame("b", 4, 0, 3)]); // mixed sizes: dropped
  await writer.close();
  assertEquals(ids(await collected), ["a2", "a3"]);
  const s = stage.stats();
  assertEquals([s.batches, s.failedBatches, s.droppedFrames], [2, 3, 5]);
  assertEquals(s.errors.map((e) => e.count), [2, 1]);
  assertEquals(s.errors[0]!.message, "Cannot run batch: device lost");
  const logged = lines.filter((l) => l.includes("batch dropped: inference failed"));
  assertEquals(logged.length, 2);
  assertOk(logged[0]!.includes("count=1") && logged[0]!.includes("device lost"), logged[0]);
});

Deno.test("InferenceStage() setModel() swaps from the next batch and hands back the idle engine", async () => {
  const old = new FakeEngine("old");
  const next = new FakeEngine("new");
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: old,
    model: { version: "v1" },
  });
  const writer = stage.writable.getWriter();
  const collected = Array.fromAsync(stage.readable);
  let release!: () => void;
  old.gate = new Promise((r) => release = r);
  const first = writer.write([frame("a", 0)]);
  while (old.calls === 0) await new Promise((r) => setTimeout(r, 0));
  let handedBack: InferenceEngine | undefined;
  const swapped = stage.setModel(next, { version: "v2" }).then((e) => handedBack = e);
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(handedBack, undefined); // the old engine is still busy
  release();
  await first;
  await swapped;
  assertOk(handedBack === old);
  await writer.write([frame("a", 1)]);
  await writer.close();
  const out = await collected;
  assertEquals(out.map((s) => s.modelVersion), ["v1", "v2"]);
  assertEquals([old.calls, next.calls, stage.stats().swaps], [1, 1, 1]);
});

Deno.test("InferenceStage() routes cameras to their own model and keeps the batch order", async () => {
  const shared = new FakeEngine("shared");
  const lineA = new FakeEngine("line-a");
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: shared,
    model: { version: "default@1" },
    routes: new Map([["a", "line-a"], ["c", "line-c"]]),
  });
  // "c"'s key has no model yet: the default model scores it.
  assertEquals(stage.hasModel("line-a"), false);
  assertEquals(await stage.setModel(lineA, { version: "a@1" }, "line-a"), undefined);
  assertEquals([stage.hasModel("line-a"), stage.modelFor("a").version], [true, "a@1"]);
  const batch = [frame("a", 0, 10), frame("b", 0, 20), frame("a", 1, 30), frame("c", 0, 40)];
  const out = await run(stage, [batch]);
  assertEquals(ids(out), ["a0", "b0", "a1", "c0"]);
  assertEquals(out.map((s) => s.modelVersion), ["a@1", "default@1", "a@1", "default@1"]);
  assertEquals(out.map((s) => s.batchSize), [2, 2, 2, 2]);
  assertEquals([shared.calls, lineA.calls], [1, 1]);
  assertEquals(stage.stats().models, { "line-a": "a@1" });
  assertEquals(stage.stats().batches, 1);
  assertEquals(stage.engines.map((e) => e.description), ["shared", "line-a"]);
  const next = new FakeEngine("line-a-2");
  assertEquals(await stage.setModel(next, { version: "a@2" }, "line-a"), lineA);
});

Deno.test("InferenceStage() says which precision scored each frame, per routed model", async () => {
  const shared = new FakeEngine("shared");
  const lineA = Object.assign(new FakeEngine("line-a int8"), { precision: "int8" as const });
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: shared,
    model: { version: "default@1" },
    routes: new Map([["a", "line-a"]]),
  });
  await stage.setModel(lineA, { version: "a@1" }, "line-a");
  const out = await run(stage, [[frame("a", 0, 10), frame("b", 0, 20)]]);
  assertEquals(out.map((s) => s.modelPrecision), ["int8", "fp32"]);
  assertEquals([stage.precisionFor("a"), stage.precisionFor("b")], ["int8", "fp32"]);
  const stats = stage.stats();
  assertEquals([stats.modelPrecision, stats.precisions], ["fp32", { "line-a": "int8" }]);
});

Deno.test("InferenceStage() drops only the part of a batch whose model fails", async () => {
  const shared = new FakeEngine("shared");
  const broken = new FakeEngine("broken");
  broken.fail = new Error("engine exploded");
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: shared,
    model: { version: "default@1" },
    routes: new Map([["a", "k"]]),
    logger: createLogger({ sink: () => {} }),
  });
  await stage.setModel(broken, { version: "k@1" }, "k");
  const out = await run(stage, [[frame("a", 0), frame("b", 0), frame("a", 1)]]);
  assertEquals(ids(out), ["b0"]);
  const stats = stage.stats();
  assertEquals([stats.failedBatches, stats.droppedFrames, stats.frames], [1, 2, 1]);
});

Deno.test("InferenceStage() pulls the next batch from a Batcher only when the engine is ready", async () => {
  const engine = new FakeEngine();
  let release!: () => void;
  engine.gate = new Promise((r) => release = r);
  await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 0, queuePerCamera: 2 });
  const stage = new InferenceStage({ threshold: MODEL_POLICY, engine, model: { version: "v1" } });
  const done = Array.fromAsync(batcher.readable.pipeThrough(stage));
  batcher.push(frame("a", 0));
  while (engine.calls === 0) await new Promise((r) => setTimeout(r, 0));
  // The engine is busy: frames wait in the batcher (oldest dropped), no batch is cut.
  for (let i = 1; i <= 5; i++) batcher.push(frame("a", i));
  batcher.push(frame("b", 0));
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 1));
  assertEquals(batcher.stats().batches, 1);
  assertEquals(batcher.stats().cameras["a"]!.dropped, 3);
  engine.gate = undefined;
  release();
  batcher.close();
  const out = await done;
  assertEquals(ids(out), ["a0", "a4", "b0", "a5"]);
});

/** RGB24 test card: a diagonal gradient with a bright square at (x, y). */
function testCard(camera: string, seq: number, x: number, y: number): Frame {
  const size = 256;
  const rgb = new Uint8Array(size * size * 3);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      const i = (r * size + c) * 3;
      const inside = c >= x && c < x + 24 && r >= y && r < y + 24;
      rgb[i] = inside ? 255 : (r + c) >> 1;
      rgb[i + 1] = inside ? 255 : r;
      rgb[i + 2] = inside ? 0 : c;
    }
  }
  return { camera, seq, capturedAt: Date.now(), width: size, height: size, rgb };
}

class FlakyEngine implements InferenceEngine {
  readonly description: string;
  readonly scoreKind: "raw" | "normalized";
  readonly inputSize: readonly [number, number];
  failNext = false;
  #inner: InferenceEngine;

  constructor(inner: InferenceEngine) {
    this.#inner = inner;
    this.description = inner.description;
    this.scoreKind = inner.scoreKind;
    this.inputSize = inner.inputSize;
  }

  run(batch: Tensor): Promise<InferenceOutput> {
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("Cannot run batch: injected failure"));
    }
    return this.#inner.run(batch);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#inner[Symbol.asyncDispose]();
  }
}

Deno.test("InferenceStage() scores real frames with the ONNX engine, survives a failure and swaps models", async () => {
  await using first = new FlakyEngine(await createOnnxEngine(syntheticModel()));
  await using second = await createOnnxEngine(syntheticModel(undefined, 1));
  const stage = new InferenceStage({
    threshold: MODEL_POLICY,
    engine: first,
    model: { version: "synthetic-seed0" },
  });
  const writer = stage.writable.getWriter();
  const collected = Array.fromAsync(stage.readable);
  await writer.write([testCard("line-1", 7, 10, 10), testCard("line-2", 3, 200, 120)]);
  first.failNext = true;
  await writer.write([testCard("line-1", 8, 50, 50)]);
  const handedBack = await stage.setModel(second, { version: "synthetic-seed1" });
  assertOk(handedBack === first);
  await writer.write([testCard("line-2", 4, 100, 100)]);
  await writer.close();
  const out = await collected;

  assertEquals(out.map((s) => [s.frame.camera, s.frame.seq, s.modelVersion, s.batchSize]), [
    ["line-1", 7, "synthetic-seed0", 2],
    ["line-2", 3, "synthetic-seed0", 2],
    ["line-2", 4, "synthetic-seed1", 1],
  ]);
  for (const s of out) {
    assertEquals(s.map.shape, [1, 256, 256]);
    assertEquals(s.map.data.length, 256 * 256);
    let max = -Infinity;
    for (const v of s.map.data) if (v > max) max = v;
    assertAlmostEquals(s.score, max, 1e-4 * Math.max(1, Math.abs(max)));
    assertOk(Number.isFinite(s.score) && s.inferenceMs > 0);
    assertEquals(s.anomalous, false); // a synthetic model has no thresholds
  }
  const stats = stage.stats();
  assertEquals([stats.batches, stats.frames, stats.failedBatches, stats.droppedFrames], [
    2,
    3,
    1,
    1,
  ]);
  assertEquals(stats.batchMs.count, 2);
});
