import { readNpy } from "../../core/npy.ts";
import { createLogger } from "../../core/log.ts";
import { ModelFormatError } from "../../core/errors.ts";
import { modelFromStateDict } from "../../model/artifact.ts";
import { readTorchCheckpoint } from "../../model/torch_checkpoint.ts";
import { assertEquals, assertOk, assertRejects } from "../../../tests/assert.ts";
import {
  assertClose,
  HAS_SHARED,
  loadOwnCase,
  OWN_CASES,
  ROOT,
  SHARED_S,
} from "../../../tests/parity.ts";
import { createOnnxEngine } from "./engine.ts";
import { createAnomalibOnnxEngine } from "./anomalib_engine.ts";

Deno.test({
  name: "createOnnxEngine() matches anomalib's maps, scores and autoencoder output (S)",
  ignore: !HAS_SHARED,
  async fn() {
    const path = `${SHARED_S}model.pth`;
    const model = await modelFromStateDict(path, await readTorchCheckpoint(path));
    await using engine = await createOnnxEngine(model, { debug: true });
    const out = await engine.run(await readNpy(`${SHARED_S}input.npy`));
    const map = await readNpy(`${SHARED_S}anomaly_map.npy`);
    assertClose("anomaly_map", out.anomalyMap, map);
    assertClose("pred_score", out.predScore, await readNpy(`${SHARED_S}pred_score.npy`), {
      rangeOf: map,
    });
    assertClose("map_st_raw", out.mapSt, await readNpy(`${SHARED_S}map_st_raw.npy`));
    assertClose("map_ae_raw", out.mapAe, await readNpy(`${SHARED_S}map_ae_raw.npy`));
    const ae0 = await readNpy(`${SHARED_S}ae_out0.npy`);
    const ae = out.aeOut!;
    assertClose("ae_out[0]", { shape: ae0.shape, data: ae.data.subarray(0, ae0.data.length) }, ae0);
  },
});

for (const name of OWN_CASES) {
  Deno.test(`createOnnxEngine() matches the SPEC reference for fixture ${name}`, async () => {
    const c = await loadOwnCase(name);
    await using engine = await createOnnxEngine(c.model);
    const out = await engine.run(c.input);
    assertClose("anomaly_map", out.anomalyMap, c.expected.anomalyMap);
    assertClose("pred_score", out.predScore, c.expected.predScore, {
      rangeOf: c.expected.anomalyMap,
    });
    assertClose("map_st_raw", out.mapSt, c.expected.mapSt);
    assertClose("map_ae_raw", out.mapAe, c.expected.mapAe);
  });
}

Deno.test("createOnnxEngine() falls back to CPU and names the provider in use", async () => {
  const c = await loadOwnCase("s-padding");
  const lines: string[] = [];
  await using engine = await createOnnxEngine(c.model, {
    executionProviders: ["tensorrt", "cuda", "cpu"],
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  assertEquals(engine.provider, "cpu");
  assertOk(lines.some((l) => l.includes("execution provider fallback") && l.includes("using=cpu")));
  assertOk(lines.some((l) => l.includes("provider=cpu")), lines.join("\n"));
});

Deno.test("engine.run() rejects a batch of the wrong size", async () => {
  const c = await loadOwnCase("s-padding");
  await using engine = await createOnnxEngine(c.model);
  await assertRejects(
    () => engine.run({ shape: [1, 3, 128, 128], data: new Float32Array(3 * 128 * 128) }),
    RangeError,
    "expected [N, 3, 256, 256]",
  );
});

const ANOMALIB = `${ROOT}tests/fixtures/anomalib_onnx/`;

Deno.test("createAnomalibOnnxEngine() serves an anomalib-style export as it is", async () => {
  await using engine = await createAnomalibOnnxEngine(`${ANOMALIB}model.onnx`);
  assertEquals(engine.scoreKind, "normalized");
  // 2 x 3 x 200 x 300: a dynamic-size export resizes by itself.
  const out = await engine.run(await readNpy(`${ANOMALIB}input.npy`));
  const map = await readNpy(`${ANOMALIB}anomaly_map.npy`);
  assertEquals(out.anomalyMap.shape, [2, 1, 256, 256]);
  assertEquals(out.predScore.shape, [2, 1]);
  assertClose("anomaly_map", out.anomalyMap, map, { tolerance: 1e-5 });
  assertClose("pred_score", out.predScore, await readNpy(`${ANOMALIB}pred_score.npy`), {
    tolerance: 1e-5,
  });
  const labels = await readNpy(`${ANOMALIB}pred_label.npy`);
  assertEquals([...out.predLabel!], [...labels.data]);
});

Deno.test("createAnomalibOnnxEngine() names a broken file and the problem", async () => {
  const path = await Deno.makeTempFile({ suffix: ".onnx" });
  try {
    await Deno.writeFile(path, new TextEncoder().encode("this is not a protobuf"));
    await assertRejects(() => createAnomalibOnnxEngine(path), ModelFormatError, path);
  } finally {
    await Deno.remove(path);
  }
});
