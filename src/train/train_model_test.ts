import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { readCheckpoint } from "./checkpoint.ts";
import type { TrainProgress } from "./progress_event.ts";
import { stubFactory, type StubStep, writePngs } from "./_test_utils.ts";
import { defaultStepFactory, trainModel } from "./train_model.ts";

const quiet = createLogger({ sink: () => {} });

Deno.test("defaultStepFactory() loads the default (ONNX Runtime) step", async () => {
  assertEquals(typeof (await defaultStepFactory("onnx")), "function");
});

Deno.test("trainModel() needs data and out unless it resumes", async () => {
  await assertRejects(
    () => trainModel({ out: "m", engine: "onnx", log: quiet, step: stubFactory() }),
    InputError,
    "data and out are required",
  );
});

Deno.test("trainModel() reports progress every logEvery steps and stops on the signal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "data"), 3, { width: 256, height: 256 });
    const controller = new AbortController();
    const reports: TrainProgress[] = [];
    const made: StubStep[] = [];
    let started = 0;
    const outcome = await trainModel({
      data: join(dir, "data"),
      out: join(dir, "model"),
      steps: 10,
      checkpointEvery: 0,
      engine: "onnx",
      log: quiet,
      terminal: false,
      logEvery: 2,
      step: stubFactory(made),
      signal: controller.signal,
      onStarted: () => started++,
      onProgress: (p) => {
        assertEquals(started, 1);
        reports.push(p);
        if (p.step === 4) controller.abort();
      },
    });
    assertEquals(reports.map((p) => [p.step, p.total]), [[2, 10], [4, 10]]);
    assertOk(reports.every((p) => p.loss !== undefined && p.etaMs !== undefined && p.eta));
    assertEquals([outcome.interrupted, outcome.step, outcome.out], [true, 4, undefined]);
    assertEquals(outcome.checkpointDir, join(dir, "model", "checkpoint"));
    assertEquals((await readCheckpoint(outcome.checkpointDir)).loop.step, 4);
    assertOk(made[0]!.disposed);
    assertEquals(started, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
