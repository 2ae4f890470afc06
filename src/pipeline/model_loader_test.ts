import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import type { ResolvedModel } from "../config/mod.ts";
import { createLogger } from "../core/log.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { resolveConfig } from "../model/config.ts";
import type { Thresholds } from "../model/model.ts";
import { writeInt8Graph, writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { loadPipelineModel } from "./model_loader.ts";

const FP32: Thresholds = { threshold: 1.5, min: 0.2, max: 1.5 };
const INT8: Thresholds = { threshold: 1.7, min: 0.3, max: 1.7 };

/**
 * A project model directory with fp32 thresholds and, when `int8` is set, an int8 block
 * whose file is a stand-in (the fp32 graph's bytes: ONNX Runtime loads it, the engine
 * reports int8).
 */
async function modelDir(dir: string, int8: boolean): Promise<string> {
  const model = {
    ...syntheticModel(resolveConfig({ teacherOutChannels: 8 })),
    thresholds: FP32,
    provenance: { version: "m1", source: "efficientad-ts train" },
  };
  await writeProjectModel(dir, model);
  if (int8) {
    await writeInt8Graph(dir, buildEfficientAdGraph(model), {
      calibration: { method: "minmax", frames: 4, seconds: 1, createdAt: "2026-12-06T00:00:00Z" },
      quantiles: { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 },
      thresholds: INT8,
    });
  }
  return dir;
}

function resolved(path: string, precision: ResolvedModel["precision"]): ResolvedModel {
  return {
    path,
    engine: "onnx",
    executionProviders: ["cpu"],
    threads: 1,
    precision,
    threshold: { policy: "model" },
    hints: {},
  };
}

function captured(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", sink: (l) => lines.push(l) }) };
}

Deno.test("loadPipelineModel() serves the int8 graph with its own thresholds at precision int8", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = await modelDir(join(tmp, "m"), true);
    const log = captured();
    const int8 = await loadPipelineModel(resolved(dir, "int8"), log.logger);
    await using _int8 = int8.engine;
    assertEquals(int8.engine.precision, "int8");
    assertEquals(int8.thresholds, INT8);
    assertEquals(log.lines.filter((l) => l.includes("not used")), []);
    const fp32 = await loadPipelineModel(resolved(dir, "fp32"), log.logger);
    await using _fp32 = fp32.engine;
    assertEquals(fp32.engine.precision, "fp32");
    assertEquals(fp32.thresholds, FP32);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadPipelineModel() falls back to fp32 and its thresholds when the model has no int8 graph", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = await modelDir(join(tmp, "m"), false);
    const log = captured();
    const loaded = await loadPipelineModel(resolved(dir, "int8"), log.logger);
    await using _engine = loaded.engine;
    assertEquals(loaded.engine.precision, "fp32");
    assertEquals(loaded.thresholds, FP32);
    assertOk(log.lines.some((l) => l.includes("int8 graph not used")), log.lines.join("\n"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
