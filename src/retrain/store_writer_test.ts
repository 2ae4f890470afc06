import { assertEquals, assertOk } from "../../tests/assert.ts";
import { rampFrame, tempStore } from "./_test_utils.ts";
import { StoreWriter } from "./store_writer.ts";

Deno.test("StoreWriter.write() stores in the background and drops beyond maxPending", async () => {
  await using t = await tempStore();
  const writer = new StoreWriter(t.store, { maxPending: 2 });
  const stored: number[] = [];
  for (let seq = 0; seq < 3; seq++) writer.write(rampFrame(seq, 8), 0.5, () => stored.push(seq));
  await writer.settled();
  assertEquals([stored, writer.dropped], [[0, 1], 1]);
  assertEquals(t.store.list().map((f) => [f.seq, f.score]), [[0, 0.5], [1, 0.5]]);
  writer.write(rampFrame(3, 8), Number.NaN);
  await writer.settled();
  assertEquals(t.store.list().at(-1)?.score, undefined);
});

Deno.test("StoreWriter() tells a failing store once per repeatMs and forgets it after a write", async () => {
  let now = 0;
  let fail = true;
  await using t = await tempStore({
    writeFile: (path, data) =>
      fail ? Promise.reject(new Error("No space left on device")) : Deno.writeFile(path, data),
  });
  const told: string[] = [];
  const writer = new StoreWriter(t.store, {
    repeatMs: 60_000,
    now: () => now,
    onError: (e) => told.push(e),
  });
  for (let seq = 0; seq < 3; seq++) {
    writer.write(rampFrame(seq, 8), 0);
    await writer.settled();
  }
  assertEquals(told.length, 1);
  assertOk(told[0]!.startsWith(`Cannot store frames in ${t.store.dir}: `), told[0]);
  assertOk(told[0]!.includes("No space left on device"), told[0]);
  assertOk(told[0]!.includes("inspection goes on"), told[0]);
  assertEquals(writer.error, told[0]);
  now += 60_000;
  writer.write(rampFrame(3, 8), 0);
  await writer.settled();
  assertEquals(told.length, 2);
  fail = false;
  writer.write(rampFrame(4, 8), 0);
  await writer.settled();
  assertEquals(writer.error, undefined);
});
