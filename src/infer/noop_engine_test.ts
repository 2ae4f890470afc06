import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { NoopEngine } from "./noop_engine.ts";

function batch(n: number, h: number, w: number) {
  return { shape: [n, 3, h, w], data: new Float32Array(n * 3 * h * w) };
}

Deno.test("NoopEngine() returns constant maps and scores of the batch's shapes", async () => {
  await using engine = new NoopEngine({ inputSize: [4, 6], score: 0.5, mapValue: 0.25 });
  const out = await engine.run(batch(3, 4, 6));
  assertEquals(out.anomalyMap.shape, [3, 1, 4, 6]);
  assertEquals(out.anomalyMap.data.length, 3 * 24);
  assertEquals(out.anomalyMap.data.every((v) => v === 0.25), true);
  assertEquals(out.predScore.shape, [3, 1]);
  assertEquals([...out.predScore.data], [0.5, 0.5, 0.5]);
  assertEquals(engine.runs, 1);
  assertEquals(engine.scoreKind, "raw");
  assertEquals(engine.inputSize, [4, 6]);
});

Deno.test("NoopEngine() reuses the outputs of a batch size", async () => {
  await using engine = new NoopEngine({ inputSize: [2, 2] });
  const a = await engine.run(batch(2, 2, 2));
  const b = await engine.run(batch(2, 2, 2));
  const c = await engine.run(batch(1, 2, 2));
  assertEquals(a === b, true);
  assertEquals(c.anomalyMap.shape, [1, 1, 2, 2]);
  assertEquals(engine.runs, 3);
});

Deno.test("NoopEngine() rejects a batch of the wrong shape, and runs after dispose", async () => {
  const engine = new NoopEngine({ inputSize: [4, 4] });
  await assertRejects(
    () => engine.run(batch(1, 4, 5)),
    RangeError,
    "expected a batch N x 3 x 4 x 4",
  );
  await assertRejects(
    () => engine.run({ shape: [1, 3, 4, 4], data: new Float32Array(3) }),
    RangeError,
  );
  await engine[Symbol.asyncDispose]();
  await assertRejects(() => engine.run(batch(1, 4, 4)), Error, "disposed");
});
