import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import type { Frame } from "../core/frame.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { createLogger } from "../core/log.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { resolveConfig } from "../model/config.ts";
import type { Thresholds } from "../model/model.ts";
import type { Precision } from "../core/frame.ts";
import { MODEL_JSON, writeInt8Graph, writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { tempStore } from "./_test_utils.ts";
import { Promoter, type ServedModel } from "./promotion.ts";
import { ModelRegistry } from "./registry.ts";

/** A distinct 256 x 256 noise frame. */
function frame(seq: number): Frame {
  const rgb = new Uint8Array(256 * 256 * 3);
  let s = seq * 2654435761 + 1;
  for (let i = 0; i < rgb.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    rgb[i] = s >>> 24;
  }
  return { camera: "cam", seq, capturedAt: seq, width: 256, height: 256, rgb };
}

// Nothing flagged (threshold above every score) vs everything flagged.
const LENIENT: Thresholds = { threshold: 1e9, min: 0, max: 2e9 };
const STRICT: Thresholds = { threshold: -1e9, min: -2e9, max: 0 };
const MARGINS = {
  flaggedFraction: 0.05,
  medianNormalized: 0.1,
  detectedFraction: 0.1,
  auroc: 0.02,
};

async function setup() {
  const t = await tempStore();
  const registry = await ModelRegistry.open(join(t.dir, "models"));
  const swaps: ServedModel[] = [];
  const promoter = new Promoter({
    registry,
    store: t.store,
    margins: MARGINS,
    swap: async (engine: InferenceEngine, info: ServedModel) => {
      swaps.push(info);
      await engine[Symbol.asyncDispose]();
    },
  });
  let n = 0;
  /** A trained candidate's folder, as the trainer leaves it. */
  const trained = async (thresholds: Thresholds) => {
    const dir = join(t.dir, `out-${++n}`);
    await writeProjectModel(dir, {
      ...syntheticModel(undefined, 1),
      thresholds,
      provenance: { version: `m${n}`, source: "test" },
    });
    return dir;
  };
  return {
    promoter,
    registry,
    store: t.store,
    swaps,
    trained,
    [Symbol.asyncDispose]: () => t[Symbol.asyncDispose](),
  };
}

Deno.test("Promoter.validate() promotes a first candidate, refuses a worse one, rollback() swaps back", async () => {
  await using t = await setup();
  const holdout = [frame(1), frame(2)];
  const candidates: string[] = [];
  const onCandidate = (id: string) => void candidates.push(id);
  const first = await t.promoter.validate(await t.trained(LENIENT), holdout, {
    reason: "bootstrap",
    onCandidate,
  });
  assertOk(first.kind === "promoted");
  assertEquals([first.from, first.validation.current], [undefined, undefined]);
  assertEquals(first.validation.candidate.normalFrames, 2);
  assertEquals([t.registry.currentId, t.swaps.map((s) => s.version)], [first.version, [
    first.version,
  ]]);
  assertEquals(t.swaps[0]!.thresholds, LENIENT);

  const worse = await t.promoter.validate(await t.trained(STRICT), holdout, {
    reason: "manual: test",
    onCandidate,
  });
  assertOk(worse.kind === "refused");
  assertOk(worse.reason.includes("candidate flags 100 %"), worse.reason);
  assertEquals([
    worse.validation?.candidate.flaggedFraction,
    worse.validation?.current?.flaggedFraction,
  ], [1, 0]);
  assertEquals([t.registry.currentId, t.swaps.length], [first.version, 1]);

  const second = await t.promoter.validate(await t.trained(LENIENT), holdout, { reason: "count" });
  assertOk(second.kind === "promoted");
  assertEquals(second.from, first.version);
  assertEquals(candidates, [first.version, worse.candidate]);
  assertEquals(await t.promoter.rollback("operator"), {
    version: first.version,
    from: second.version,
  });
  assertEquals([t.registry.currentId, t.swaps.at(-1)?.version], [first.version, first.version]);
});

Deno.test("Promoter.validate() rolls the registry back when the swap fails", async () => {
  await using t = await setup();
  const holdout = [frame(1), frame(2)];
  const first = await t.promoter.validate(await t.trained(LENIENT), holdout, { reason: "first" });
  assertOk(first.kind === "promoted");
  const failing = new Promoter({
    registry: t.registry,
    store: t.store,
    margins: MARGINS,
    swap: () => Promise.reject(new Error("engine busy")),
  });
  await assertRejects(
    async () => await failing.validate(await t.trained(LENIENT), holdout, { reason: "second" }),
    Error,
    "engine busy",
  );
  assertEquals(t.registry.currentId, first.version);
});

/** A small model (8 teacher channels): its fp32 graph's bytes stand in for an int8 graph. */
const SMALL = syntheticModel(resolveConfig({ teacherOutChannels: 8 }));

/**
 * A promoter at precision int8 with the default ONNX engine factory, and trained candidates
 * with fp32 thresholds and, unless `int8` is null, an int8 block with its own thresholds
 * (the file a stand-in that ONNX Runtime loads, so the engine reports int8).
 */
async function int8Setup(precision: Precision = "int8") {
  const t = await tempStore();
  const registry = await ModelRegistry.open(join(t.dir, "models"));
  const swaps: ServedModel[] = [];
  const lines: string[] = [];
  const promoter = new Promoter({
    registry,
    store: t.store,
    margins: MARGINS,
    precision,
    logger: createLogger({ level: "debug", sink: (l) => lines.push(l) }),
    swap: async (engine: InferenceEngine, info: ServedModel) => {
      swaps.push(info);
      await engine[Symbol.asyncDispose]();
    },
  });
  let n = 0;
  const trained = async (fp32: Thresholds, int8: Thresholds | null) => {
    const dir = join(t.dir, `out-${++n}`);
    const model = { ...SMALL, thresholds: fp32, provenance: { version: `m${n}`, source: "test" } };
    await writeProjectModel(dir, model);
    if (int8 !== null) {
      await writeInt8Graph(dir, buildEfficientAdGraph(model), {
        calibration: { method: "minmax", frames: 2, seconds: 1, createdAt: "2026-12-06T00:00:00Z" },
        quantiles: { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 },
        thresholds: int8,
      });
    }
    return dir;
  };
  return {
    promoter,
    registry,
    swaps,
    lines,
    trained,
    [Symbol.asyncDispose]: () => t[Symbol.asyncDispose](),
  };
}

Deno.test("Promoter.validate() at int8 judges the int8 graph by its own thresholds and serves them", async () => {
  await using t = await int8Setup();
  const holdout = [frame(1), frame(2)];
  // fp32 thresholds would flag every frame; the int8 graph's own flag none.
  const first = await t.promoter.validate(await t.trained(STRICT, LENIENT), holdout, {
    reason: "bootstrap",
  });
  assertOk(first.kind === "promoted", first.reason);
  assertOk(first.reason.includes("candidate's int8 graph flags 0 %"), first.reason);
  assertEquals(t.swaps.map((s) => s.thresholds), [LENIENT]);
  const lenient2 = { threshold: 2e9, min: 0, max: 4e9 };
  const second = await t.promoter.validate(await t.trained(STRICT, lenient2), holdout, {
    reason: "count",
  });
  assertOk(second.kind === "promoted", second.reason);
  // A rollback serves the first model's int8 graph again, with its int8 thresholds.
  await t.promoter.rollback("operator");
  assertEquals(t.swaps.map((s) => s.thresholds), [LENIENT, lenient2, LENIENT]);
  assertEquals(t.registry.currentId, first.version);
});

Deno.test("Promoter.validate() at int8 refuses a candidate whose int8 graph flags too many held-out frames", async () => {
  await using t = await int8Setup();
  const holdout = [frame(1), frame(2)];
  const first = await t.promoter.validate(await t.trained(LENIENT, LENIENT), holdout, {
    reason: "bootstrap",
  });
  assertOk(first.kind === "promoted");
  // Its fp32 thresholds flag nothing, its int8 graph's flag everything: the int8 graph is what
  // would serve, so it is refused.
  const worse = await t.promoter.validate(await t.trained(LENIENT, STRICT), holdout, {
    reason: "drift",
  });
  assertOk(worse.kind === "refused");
  assertEquals(
    worse.reason.split("; ")[0],
    "candidate's int8 graph flags 100 % of held-out normal frames vs 0 % for the current " +
      "model (margin 5 %)",
  );
  assertEquals(worse.validation?.candidate.flaggedFraction, 1);
  assertEquals([t.registry.currentId, t.swaps.length], [first.version, 1]);
});

Deno.test("Promoter.validate() at int8 refuses a candidate without a usable int8 graph", async () => {
  await using t = await int8Setup();
  const holdout = [frame(1), frame(2)];
  const first = await t.promoter.validate(await t.trained(LENIENT, LENIENT), holdout, {
    reason: "bootstrap",
  });
  assertOk(first.kind === "promoted");
  const none = await t.promoter.validate(await t.trained(LENIENT, null), holdout, {
    reason: "count",
  });
  assertOk(none.kind === "refused");
  assertEquals(
    none.reason,
    "candidate has no usable int8 graph (its model directory has none: the trainer did not " +
      "calibrate one)",
  );
  assertEquals(none.validation, undefined);
  // An int8 file altered after calibration: the engine serves fp32, the candidate is refused
  // with the engine's reason.
  const dir = await t.trained(LENIENT, LENIENT);
  const json = JSON.parse(await Deno.readTextFile(join(dir, MODEL_JSON)));
  await Deno.writeFile(join(dir, json.int8.file), Uint8Array.of(1, 2, 3));
  const altered = await t.promoter.validate(dir, holdout, { reason: "count" });
  assertOk(altered.kind === "refused");
  assertOk(altered.reason.startsWith("candidate has no usable int8 graph ("), altered.reason);
  assertOk(altered.reason.includes("does not match the sha256"), altered.reason);
  assertEquals([t.registry.currentId, t.swaps.length], [first.version, 1]);
  assertOk(t.lines.some((l) => l.includes("int8 graph not used")));
});

Deno.test("Promoter.validate() at fp32 ignores the int8 graph and serves the fp32 thresholds", async () => {
  await using t = await int8Setup("fp32");
  const holdout = [frame(1), frame(2)];
  const first = await t.promoter.validate(await t.trained(LENIENT, STRICT), holdout, {
    reason: "bootstrap",
  });
  assertOk(first.kind === "promoted", first.reason);
  assertOk(first.reason.includes("candidate flags 0 %"), first.reason);
  assertEquals(t.swaps.map((s) => s.thresholds), [LENIENT]);
  const none = await t.promoter.validate(await t.trained(LENIENT, null), holdout, { reason: "x" });
  assertEquals(none.kind, "promoted");
});
