import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { rampFrame, tempStore } from "./_test_utils.ts";
import { NewScene } from "./new_scene.ts";
import { StoreWriter } from "./store_writer.ts";

Deno.test("NewScene.collect() waits for the frames captured since the drifted window began", async () => {
  await using t = await tempStore();
  const writer = new StoreWriter(t.store);
  const scene = new NewScene(t.store, writer, { window: 2, needed: 3 });
  // Frames 0 to 3 kept: the window holds the last two (captured at 1002 and 1003).
  for (let seq = 0; seq < 4; seq++) {
    writer.write(rampFrame(seq, 8), 0.1);
    scene.noteKept(1000 + seq);
  }
  await writer.settled();
  scene.begin(0);
  assertEquals([scene.active, scene.frames().map((f) => f.seq)], [true, [2, 3]]);
  const counts: number[] = [];
  const abort = new AbortController();
  const collected = scene.collect(abort.signal, (n) => counts.push(n));
  writer.write(rampFrame(4, 8), 0.1);
  assertEquals((await collected).map((f) => f.seq), [2, 3, 4]);
  assertEquals(counts, [2]);
  scene.end();
  assertEquals([scene.active, scene.frames().length], [false, 5]);
  // Without a window (drift off or just after a promotion) the scene starts now.
  scene.forget();
  scene.begin(1004);
  assertEquals(scene.frames().map((f) => f.seq), [4]);
  abort.abort(new Error("cancelled"));
  await assertRejects(() => scene.collect(abort.signal, () => {}), Error, "cancelled");
});
