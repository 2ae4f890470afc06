/**
 * The engine's int8 path: which graph serves, and the fallback to fp32 when the model's
 * int8 graph is missing, altered or unloadable. The int8 graph's numerics are tested with
 * the quantizer (`src/quantize`); here a stand-in file (the fp32 graph's bytes) is enough
 * to tell which file ONNX Runtime loaded.
 */
import { captureLog } from "../../publish/_test_utils.ts";
import { sha256Hex } from "../../core/sha256.ts";
import { assertEquals, assertOk } from "../../../tests/assert.ts";
import { resolveConfig } from "../../model/config.ts";
import type { EfficientAdModel, Int8Graph } from "../../model/model.ts";
import { syntheticModel } from "../../model/synthetic.ts";
import { buildEfficientAdGraph } from "./efficientad_graph.ts";
import { createOnnxEngine } from "./engine.ts";

const MODEL = syntheticModel(resolveConfig({ teacherOutChannels: 8 }));

async function withInt8File(
  bytes: Uint8Array,
  fn: (model: EfficientAdModel, path: string) => Promise<void>,
  sha256?: string,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.int8-test.onnx`;
    await Deno.writeFile(path, bytes);
    const int8: Int8Graph = {
      path,
      sha256: sha256 ?? await sha256Hex(bytes),
      calibration: { method: "minmax", frames: 4, seconds: 1, createdAt: "2026-12-06T00:00:00Z" },
      quantiles: { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 },
      thresholds: { threshold: 0.5, min: 0, max: 0.5 },
    };
    await fn({ ...MODEL, int8 }, path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createOnnxEngine() with precision int8 serves the model's int8 file and says so", async () => {
  await withInt8File(buildEfficientAdGraph(MODEL), async (model) => {
    const log = captureLog();
    await using engine = await createOnnxEngine(model, {
      precision: "int8",
      intraOpThreads: 1,
      logger: log.logger,
    });
    assertEquals(engine.precision, "int8");
    assertOk(engine.description.startsWith("onnx (cpu int8, 1 threads)"), engine.description);
    assertEquals(log.lines.filter((l) => l.includes("int8 graph not used")), []);
  });
});

Deno.test("createOnnxEngine() serves fp32 with the reason when the model has no int8 graph", async () => {
  const log = captureLog();
  await using engine = await createOnnxEngine(MODEL, { precision: "int8", logger: log.logger });
  assertEquals(engine.precision, "fp32");
  const line = log.lines.find((l) => l.includes("int8 graph not used")) ?? "";
  assertOk(line.includes("serving fp32") && line.includes("quantize --model"), line);
});

Deno.test("createOnnxEngine() serves fp32 when the int8 file was altered after quantization", async () => {
  const bytes = buildEfficientAdGraph(MODEL);
  const sha = await sha256Hex(bytes);
  const altered = bytes.slice();
  altered[altered.length - 1] = altered.at(-1)! ^ 1;
  await withInt8File(altered, async (model, path) => {
    const log = captureLog();
    await using engine = await createOnnxEngine(model, { precision: "int8", logger: log.logger });
    assertEquals(engine.precision, "fp32");
    const line = log.lines.find((l) => l.includes("int8 graph not used")) ?? "";
    assertOk(line.includes(path) && line.includes("does not match the sha256"), line);
    const out = await engine.run({
      shape: [1, 3, 256, 256],
      data: new Float32Array(3 * 256 * 256),
    });
    assertEquals(out.predScore.shape, [1, 1]);
  }, sha);
});

Deno.test("createOnnxEngine() serves fp32 when ONNX Runtime cannot load the int8 file", async () => {
  await withInt8File(new TextEncoder().encode("not an onnx graph"), async (model, path) => {
    const log = captureLog();
    await using engine = await createOnnxEngine(model, { precision: "int8", logger: log.logger });
    assertEquals(engine.precision, "fp32");
    const line = log.lines.find((l) => l.includes("int8 graph not used")) ?? "";
    assertOk(line.includes(`ONNX Runtime cannot load ${path}`), line);
  });
});

Deno.test("createOnnxEngine() serves fp32 when the int8 file is gone", async () => {
  let model: EfficientAdModel | undefined;
  await withInt8File(Uint8Array.of(1), (m) => {
    model = m;
    return Promise.resolve();
  });
  const log = captureLog();
  await using engine = await createOnnxEngine(model!, { precision: "int8", logger: log.logger });
  assertEquals(engine.precision, "fp32");
  const line = log.lines.find((l) => l.includes("int8 graph not used")) ?? "";
  assertOk(line.includes("cannot read"), line);
});
