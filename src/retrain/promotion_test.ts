import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import type { Frame } from "../core/frame.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import type { Thresholds } from "../model/model.ts";
import { writeProjectModel } from "../model/project_format.ts";
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
    worse.validation.candidate.flaggedFraction,
    worse.validation.current?.flaggedFraction,
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
