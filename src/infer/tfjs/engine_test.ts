import * as tf from "@tensorflow/tfjs-core";
import { assertEquals, assertOk, assertRejects } from "../../../tests/assert.ts";
import {
  assertClose,
  HAS_SHARED,
  loadOwnCase,
  OWN_CASES,
  ownCaseDir,
  SHARED_S,
} from "../../../tests/parity.ts";
import { ModelFormatError } from "../../core/errors.ts";
import { readNpy } from "../../core/npy.ts";
import { item, tensor } from "../../core/tensor.ts";
import { resolveConfig } from "../../model/config.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import { syntheticModel } from "../../model/synthetic.ts";
import { readTorchCheckpoint } from "../../model/torch_checkpoint.ts";
import { selectTfjsBackend } from "./backend.ts";
import { createTfjsEngine } from "./engine.ts";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "TfjsEngine() matches anomalib's maps",
  ignore: !HAS_SHARED,
  async fn() {
    const model: EfficientAdModel = {
      config: resolveConfig(), // the fixture's meta.json: S, 384, no padding, pad_maps
      stateDict: await readTorchCheckpoint(`${SHARED_S}model.pth`),
      provenance: { version: "anomalib-fixture", source: "anomalib" },
      resize: "bilinear",
    };
    const read = (name: string) => readNpy(`${SHARED_S}${name}.npy`);
    const input = await read("input");
    await selectTfjsBackend(); // tf.memory() needs an initialised backend
    const before = tf.memory().numTensors;
    {
      await using engine = await createTfjsEngine(model, { debug: true });
      const loaded = tf.memory().numTensors;
      const out = await engine.run(input);
      assertEquals(tf.memory().numTensors, loaded, "run() leaked tensors");
      const map = await read("anomaly_map");
      assertEquals(out.anomalyMap.shape, [3, 1, 256, 256]);
      assertEquals(out.predScore.shape, [3, 1]);
      assertClose("anomaly_map", out.anomalyMap, map);
      assertClose("pred_score", out.predScore, await read("pred_score"), { rangeOf: map });
      assertClose("map_st_raw", out.mapSt, await read("map_st_raw"));
      assertClose("map_ae_raw", out.mapAe, await read("map_ae_raw"));
      assertEquals(out.aeOut?.shape, [3, 384, 56, 56]);
      const ae0 = await read("ae_out0");
      assertClose("ae_out0", out.aeOut && tensor(ae0.shape, item(out.aeOut, 0).data), ae0);
    }
    assertEquals(tf.memory().numTensors, before, "dispose left tensors behind");
  },
});

for (const name of OWN_CASES) {
  const present = exists(`${ownCaseDir(name)}meta.json`);
  Deno.test({
    name: `TfjsEngine() matches the reference maps of fixture ${name}`,
    ignore: !present,
    async fn() {
      const { model, input, expected } = await loadOwnCase(name);
      await using engine = await createTfjsEngine(model);
      const out = await engine.run(input);
      assertClose("anomaly_map", out.anomalyMap, expected.anomalyMap);
      assertClose("pred_score", out.predScore, expected.predScore, {
        rangeOf: expected.anomalyMap,
      });
      assertClose("map_st_raw", out.mapSt, expected.mapSt);
      assertClose("map_ae_raw", out.mapAe, expected.mapAe);
      assertEquals(out.aeOut, undefined, "aeOut without debug");
    },
  });
  if (!present) {
    console.warn(`tests/fixtures/efficientad/${name} is absent: its tfjs parity test is skipped`);
  }
}

Deno.test("TfjsEngine() rejects batches of the wrong shape", async () => {
  await using engine = await createTfjsEngine(syntheticModel());
  for (const shape of [[1, 3, 128, 128], [1, 1, 256, 256], [0, 3, 256, 256], [3, 256, 256]]) {
    await assertRejects(
      () => engine.run(tensor(shape)),
      RangeError,
      "expected [N, 3, 256, 256]",
    );
  }
});

Deno.test("TfjsEngine() does not start a run whose signal is aborted", async () => {
  await using engine = await createTfjsEngine(syntheticModel());
  const controller = new AbortController();
  controller.abort();
  await assertRejects(
    () => engine.run(tensor([1, 3, 256, 256]), { signal: controller.signal }),
    DOMException,
    "abort",
  );
});

Deno.test("TfjsEngine() frees its weights on dispose and refuses to run after", async () => {
  await selectTfjsBackend();
  const before = tf.memory().numTensors;
  const engine = await createTfjsEngine(syntheticModel());
  assertOk(engine.description.startsWith(`tfjs (${engine.backend.kind}`), engine.description);
  assertEquals([engine.inputSize, engine.scoreKind], [[256, 256], "raw"]);
  assertOk(tf.memory().numTensors > before, "the engine holds its weights as tensors");
  await engine[Symbol.asyncDispose]();
  assertEquals(tf.memory().numTensors, before);
  await assertRejects(
    () => engine.run(tensor([1, 3, 256, 256])),
    Error,
    "Cannot run tfjs engine: it was disposed",
  );
  await engine[Symbol.asyncDispose](); // idempotent
});

Deno.test("createTfjsEngine() rejects weights that do not fit the config", async () => {
  const model = syntheticModel();
  model.stateDict.delete("student.conv3.weight");
  await selectTfjsBackend();
  const before = tf.memory().numTensors;
  await assertRejects(
    () => createTfjsEngine(model),
    ModelFormatError,
    `missing key "student.conv3.weight"`,
  );
  assertEquals(tf.memory().numTensors, before);
});
