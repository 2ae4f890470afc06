import { join } from "node:path";
import { createLogger } from "../../core/log.ts";
import { readProjectModel } from "../../model/project_format.ts";
import { createOnnxEngine } from "../../infer/onnx/engine.ts";
import { trainModel } from "../train_model.ts";
import { assertEquals, assertOk } from "../../../tests/assert.ts";
import { writePngs } from "../_test_utils.ts";

Deno.test("onnxTrainStepFactory() trains, calibrates and writes a model the engine serves", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "data"), 4, { width: 256, height: 256 });
    await writePngs(join(dir, "penalty"), 2, { width: 300, height: 260 });
    const lines: string[] = [];
    const result = await trainModel({
      data: join(dir, "data"),
      out: join(dir, "model"),
      penaltyImages: join(dir, "penalty"),
      steps: 2,
      holdout: 0.5,
      engine: "onnx",
      log: createLogger({ sink: (l) => lines.push(l) }),
      terminal: false,
    });
    assertEquals([result.step, result.interrupted], [2, false]);
    const losses = result.lastLosses!;
    assertOk(Number.isFinite(losses.loss) && losses.loss > 0, JSON.stringify(losses));
    assertOk(losses.lossSt > 0 && losses.lossAe > 0 && losses.lossStae >= 0);
    const model = await readProjectModel(join(dir, "model"));
    assertEquals(model.provenance.source, "efficientad-edge train");
    assertOk(model.thresholds !== undefined && Number.isFinite(model.thresholds.threshold));
    assertOk(model.stateDict.has("quantiles.qb_st") && model.stateDict.has("mean_std.std"));
    await using engine = await createOnnxEngine(model);
    const out = await engine.run({
      shape: [1, 3, 256, 256],
      data: new Float32Array(3 * 256 * 256).fill(0.5),
    });
    assertOk(Number.isFinite(out.predScore.data[0]!));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnxTrainStepFactory() resumes from a checkpoint to the same weights as one run", async () => {
  const { onnxTrainStepFactory } = await import("./train_step.ts");
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "data"), 3, { width: 256, height: 256 });
    await writePngs(join(dir, "penalty"), 2, { width: 300, height: 260 });
    const log = createLogger({ sink: () => {} });
    const settings = (out: string) => ({
      data: join(dir, "data"),
      out,
      penaltyImages: join(dir, "penalty"),
      steps: 2,
      holdout: 0.34,
      checkpointEvery: 0,
      engine: "onnx" as const,
      log,
      terminal: false,
    });
    await trainModel({ ...settings(join(dir, "whole")), signal: new AbortController().signal });
    // Stop after the first step, then resume.
    const controller = new AbortController();
    const inner = onnxTrainStepFactory();
    const first = await trainModel({
      ...settings(join(dir, "parts")),
      signal: controller.signal,
      step: async (init) => {
        const step = await inner(init);
        const run = step.step.bind(step);
        step.step = async (batch) => {
          const losses = await run(batch);
          controller.abort();
          return losses;
        };
        return step;
      },
    });
    assertEquals([first.interrupted, first.step], [true, 1]);
    const second = await trainModel({
      resume: join(dir, "parts", "checkpoint"),
      engine: "onnx",
      log,
      terminal: false,
      signal: new AbortController().signal,
    });
    assertEquals([second.interrupted, second.step], [false, 2]);
    const a = await readProjectModel(join(dir, "whole"));
    const b = await readProjectModel(join(dir, "parts"));
    for (const key of ["student.conv4.weight", "ae.decoder.deconv8.bias", "student.conv1.bias"]) {
      assertEquals(b.stateDict.get(key), a.stateDict.get(key), key);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
