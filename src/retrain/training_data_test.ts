import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { rampFrame, tempStore } from "./_test_utils.ts";
import { leaveOutOddFrames, writeTrainingRun } from "./training_data.ts";

Deno.test("leaveOutOddFrames() leaves out the frame that differs and keeps the decoded ones", async () => {
  await using t = await tempStore();
  for (let seq = 0; seq < 8; seq++) {
    const stain = (
      x: number,
      y: number,
    ) => (x >= 10 && x < 18 && y >= 20 && y < 26 ? 0 : undefined);
    assertOk((await t.store.add(rampFrame(seq, 64, seq === 5 ? stain : undefined))).ok);
  }
  const normal = t.store.list({ label: "normal" });
  const kept = await leaveOutOddFrames(t.store, normal);
  assertEquals(kept.frames.map((f) => f.seq), [0, 1, 2, 3, 4, 6, 7]);
  assertEquals(kept.note, "left out 1 of 8 frames that differ from the others (possible defects)");
  assertEquals(kept.decoded.size, 8);
  const agree = await leaveOutOddFrames(t.store, normal.filter((f) => f.seq !== 5));
  assertEquals([agree.frames.length, agree.note], [7, undefined]);
});

Deno.test("writeTrainingRun() holds out the latest frames and copies the others as PNG", async () => {
  await using t = await tempStore();
  for (let seq = 0; seq < 5; seq++) assertOk((await t.store.add(rampFrame(seq))).ok);
  const workDir = join(t.dir, "work");
  await Deno.mkdir(join(workDir, "run-1"), { recursive: true }); // a previous run's leftovers
  const frames = t.store.list({ label: "normal" });
  const run = await writeTrainingRun(t.store, frames, { workDir, run: 2, holdoutFraction: 0.4 });
  assertEquals([run.dir, run.dataDir, run.outDir], [
    join(workDir, "run-2"),
    join(workDir, "run-2", "data"),
    join(workDir, "run-2", "model"),
  ]);
  assertEquals(run.holdout.map((f) => f.seq), [3, 4]);
  assertEquals(run.holdout[0], rampFrame(3));
  const files = [...Deno.readDirSync(run.dataDir)].map((e) => e.name).sort();
  assertEquals(files, frames.slice(0, 3).map((f) => `${f.id}.png`).sort());
  assertEquals([...Deno.readDirSync(workDir)].map((e) => e.name), ["run-2"]);
  await assertRejects(
    () => writeTrainingRun(t.store, frames.slice(0, 1), { workDir, run: 3, holdoutFraction: 0.2 }),
    RangeError,
    "1 normal frames in the store, expected at least 2",
  );
});
