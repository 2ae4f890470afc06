import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import type { Frame, ScoredFrame } from "../core/frame.ts";
import { tensor } from "../core/tensor.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import type { ModelState, RetrainEvent } from "../core/retrain_event.ts";
import { RetrainCoordinator, type RetrainCoordinatorOptions } from "./coordinator.ts";
import type { ServedModel } from "./promotion.ts";
import { FrameStore } from "./frame_store.ts";
import { ModelRegistry } from "./registry.ts";
import { triggerSettings } from "./_test_utils.ts";

/**
 * A fake trainer for `deno eval`: the file named by `FAKE_SOURCE` holds either a model
 * directory, copied to `--out` after two progress events, or `hang` (one progress event, then
 * it waits until killed).
 */
const FAKE_TRAINER = `
const a = Deno.args;
const out = a[a.indexOf("--out") + 1];
const src = Deno.readTextFileSync(Deno.env.get("FAKE_SOURCE")).trim();
console.log('{"type":"progress","step":1,"total":2,"loss":5,"eta":"1s","etaMs":1000}');
console.error("info  data " + [...Deno.readDirSync(a[a.indexOf("--data") + 1])].length + " files");
if (src === "fail") {
  console.error("error Cannot read training data");
  Deno.exit(2);
} else if (src === "hang") {
  setInterval(() => {}, 1000);
} else {
  console.log('{"type":"progress","step":2,"total":2,"loss":2.5,"eta":"0s","etaMs":0}');
  Deno.mkdirSync(out, { recursive: true });
  for (const e of Deno.readDirSync(src)) Deno.copyFileSync(src + "/" + e.name, out + "/" + e.name);
}
`;

const SIZE = 256;

/** A distinct 256 x 256 noise frame. */
function frame(seq: number): Frame {
  const rgb = new Uint8Array(SIZE * SIZE * 3);
  let s = seq * 2654435761 + 1;
  for (let i = 0; i < rgb.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    rgb[i] = s >>> 24;
  }
  return { camera: "cam", seq, capturedAt: 1_000_000 + seq * 1000, width: SIZE, height: SIZE, rgb };
}

function scored(seq: number, score = 0.1): ScoredFrame {
  return {
    frame: frame(seq),
    score,
    anomalous: false,
    map: tensor([1, 1, 1]),
    modelVersion: "placeholder",
    batchSize: 1,
    inferenceMs: 1,
    scoredAt: 0,
  };
}

type EventOf<S extends ModelState> = Extract<RetrainEvent, { state: S }>;

/** The events of one state. */
function of<S extends ModelState>(events: readonly RetrainEvent[], state: S): EventOf<S>[] {
  return events.filter((e): e is EventOf<S> => e.state === state);
}

/** `event`, checked to be of `state`. */
function expectState<S extends ModelState>(event: RetrainEvent | undefined, state: S): EventOf<S> {
  assertEquals(event?.state, state);
  return event as EventOf<S>;
}

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Cannot wait: ${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A coordinator on temp dirs with the fake trainer; models `lenient` and `strict`. */
async function setup(over: Partial<RetrainCoordinatorOptions> = {}) {
  const root = await Deno.makeTempDir({ prefix: "coordinator-" });
  const lenient = join(root, "lenient");
  const strict = join(root, "strict");
  const model = syntheticModel(undefined, 1);
  // Nothing flagged (threshold above every score) vs everything flagged.
  await writeProjectModel(lenient, {
    ...model,
    thresholds: { threshold: 1e9, min: 0, max: 2e9 },
    provenance: { version: "lenient", source: "test" },
  });
  await writeProjectModel(strict, {
    ...model,
    thresholds: { threshold: -1e9, min: -2e9, max: 0 },
    provenance: { version: "strict", source: "test" },
  });
  const source = join(root, "source.txt");
  await Deno.writeTextFile(source, lenient);
  const store = await FrameStore.open(join(root, "store"));
  const registry = await ModelRegistry.open(join(root, "registry"));
  const events: RetrainEvent[] = [];
  const swaps: ServedModel[] = [];
  const coordinator = new RetrainCoordinator({
    key: "cam",
    store,
    registry,
    workDir: join(root, "work"),
    bootstrapFrames: 3,
    triggers: triggerSettings(),
    selector: { quantile: 0.5, minIntervalMs: 60_000, eventGuardMs: 30_000, duplicateThreshold: 3 },
    margins: { flaggedFraction: 0.05, medianNormalized: 0.1, detectedFraction: 0.1, auroc: 0.02 },
    bootstrapIntervalMs: 0,
    holdoutFraction: 0.34,
    train: {
      command: [Deno.execPath(), "eval", FAKE_TRAINER],
      env: { FAKE_SOURCE: source },
      nice: false,
      killGraceMs: 500,
    },
    swap: async (engine: InferenceEngine, info: ServedModel) => {
      swaps.push(info);
      await engine[Symbol.asyncDispose]();
    },
    publish: (e) => void events.push(e),
    ...over,
  });
  return {
    coordinator,
    registry,
    store,
    events,
    swaps,
    use: (what: "lenient" | "strict" | "hang" | "fail") =>
      Deno.writeTextFile(
        source,
        what === "lenient" ? lenient : what === "strict" ? strict : what,
      ),
    async [Symbol.asyncDispose]() {
      await coordinator.close();
      await store.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

async function bootstrap(t: Awaited<ReturnType<typeof setup>>): Promise<void> {
  for (let seq = 0; seq < 3; seq++) t.coordinator.observe(scored(seq));
  await until(() => t.swaps.length === 1, "first swap");
  await t.coordinator.idle();
}

Deno.test("RetrainCoordinator() bootstraps: collects N frames, trains, promotes, swaps", async () => {
  await using t = await setup();
  assertOk(t.coordinator.bootstrapping);
  assertEquals(t.coordinator.status().state, "collecting");
  await bootstrap(t);
  const states = t.events.map((e) => e.state);
  assertEquals(states.filter((s) => s === "collecting").length, 3);
  assertEquals(of(t.events, "collecting").find((e) => e.collected === 3)?.needed, 3);
  assertOk(of(t.events, "training").some((e) => e.progress?.step === 2));
  assertOk(states.indexOf("validating") < states.indexOf("promoted"));
  assertEquals(t.swaps[0]!.version, t.registry.currentId);
  assertEquals(t.swaps[0]!.thresholds?.threshold, 1e9);
  assertOk(!t.coordinator.bootstrapping);
  assertEquals(t.coordinator.status().state, "promoted");
});

Deno.test("RetrainCoordinator.retrain() refuses a worse candidate with the reason; rollback() swaps back", async () => {
  await using t = await setup();
  await bootstrap(t);
  const first = t.registry.currentId!;
  t.coordinator.observe(scored(50));
  assertOk((await t.coordinator.mark("anomalous", 50)).ok);
  // A candidate that flags every held-out normal frame, against one that flags none.
  await t.use("strict");
  assertEquals(t.coordinator.retrain("test"), "started");
  await until(() => t.events.some((e) => e.state === "refused"), "refusal");
  await t.coordinator.idle();
  const refused = of(t.events, "refused")[0]!;
  assertOk(refused.decisionReason.includes("candidate flags 100 %"), refused.decisionReason);
  assertEquals(refused.validation?.candidate.flaggedFraction, 1);
  assertEquals(refused.validation?.current?.flaggedFraction, 0);
  assertEquals(refused.validation?.candidate.anomalousFrames, 1);
  assertEquals(t.registry.currentId, first);
  assertEquals(t.swaps.length, 1);
  // An equal candidate is promoted; rollback serves the first model again.
  await t.use("lenient");
  t.coordinator.retrain("test again");
  await until(() => t.swaps.length === 2, "second swap");
  await t.coordinator.idle();
  const second = t.registry.currentId!;
  assertOk(second !== first);
  assertEquals(await t.coordinator.rollback("operator"), first);
  assertEquals(t.swaps.at(-1)?.version, first);
  assertEquals(t.registry.currentId, first);
  const back = expectState(t.events.at(-1), "rolled_back");
  assertEquals([back.state, back.serving, back.from], ["rolled_back", first, second]);
});

Deno.test("RetrainCoordinator.cancel() kills the trainer and keeps the model", async () => {
  await using t = await setup();
  await bootstrap(t);
  const first = t.registry.currentId;
  await t.use("hang");
  t.coordinator.retrain("test");
  await until(() => t.coordinator.status().scheduler.progress?.step === 1, "trainer running");
  assertEquals(t.coordinator.cancel(), "cancelled");
  await t.coordinator.idle();
  const last = expectState(t.events.at(-1), "idle");
  assertEquals([last.state, last.cancelled], ["idle", true]);
  assertEquals(t.registry.currentId, first);
  assertEquals(t.coordinator.status().scheduler.lastResult?.cancelled, true);
});

Deno.test("RetrainCoordinator.mark() stores a recent frame with the operator's label", async () => {
  await using t = await setup();
  assertEquals((await t.coordinator.mark("anomalous")).ok, false);
  t.coordinator.observe(scored(7));
  await t.coordinator.idle();
  const r = await t.coordinator.mark("anomalous", 7);
  assertOk(r.ok);
  assertEquals([r.frame.label, r.frame.source, r.frame.seq], ["anomalous", "operator", 7]);
  assertEquals((await t.coordinator.mark("normal", 99)).ok, false);
});

Deno.test("RetrainCoordinator.observe() stores selected frames and the count trigger retrains", async () => {
  await using t = await setup({
    selector: {
      quantile: 0.5,
      minSamples: 0,
      minIntervalMs: 0,
      eventGuardMs: 0,
      duplicateThreshold: -1,
    },
    triggers: triggerSettings({ minNewFrames: 2, cooldownMs: 1 }),
  });
  await bootstrap(t);
  const before = t.store.stats().frames;
  t.coordinator.observe(scored(10));
  await t.coordinator.idle();
  t.coordinator.observe(scored(11));
  await until(() => t.swaps.length === 2, "count-triggered promotion");
  await t.coordinator.idle();
  assertEquals(t.store.stats().frames, before + 2);
  assertOk(of(t.events, "training").some((e) => e.triggerReason?.startsWith("count:")));
  assertEquals(t.coordinator.status().selector.released, 2);
});

Deno.test("RetrainCoordinator() publishes a failed training and keeps collecting", async () => {
  await using t = await setup({ bootstrapRetryMs: 60_000 });
  await t.use("fail");
  for (let seq = 0; seq < 3; seq++) t.coordinator.observe(scored(seq));
  await until(() => t.events.some((e) => e.state === "failed"), "failure");
  await t.coordinator.idle();
  const failed = of(t.events, "failed")[0]!;
  assertOk(failed.decisionReason.includes("exited with code 2"), failed.decisionReason);
  assertEquals(t.registry.currentId, undefined);
  assertEquals(t.swaps.length, 0);
  // Within the retry delay, more frames do not start another training.
  t.coordinator.observe(scored(3));
  await t.coordinator.idle();
  assertEquals(t.coordinator.status().scheduler.runs, 1);
  assertOk(t.coordinator.bootstrapping);
});

Deno.test("RetrainCoordinator.close() kills a running trainer", async () => {
  const t = await setup();
  try {
    await t.use("hang");
    for (let seq = 0; seq < 3; seq++) t.coordinator.observe(scored(seq));
    await until(() => t.coordinator.status().scheduler.progress?.step === 1, "trainer running");
    await t.coordinator.close();
    assertEquals(t.coordinator.status().scheduler.lastResult?.cancelled, true);
    assertEquals(t.registry.currentId, undefined);
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("RetrainCoordinator() on drift collects frames of the new scene and trains on those only", async () => {
  await using t = await setup({
    selector: {
      quantile: 1,
      minSamples: 0,
      minIntervalMs: 0,
      eventGuardMs: 0,
      duplicateThreshold: -1,
    },
    triggers: triggerSettings({ drift: { window: 3, bound: null, factor: 1.5 }, cooldownMs: 1 }),
    driftFrames: 5,
  });
  await bootstrap(t);
  // The baseline: the first window the new model scores.
  for (let seq = 10; seq < 13; seq++) t.coordinator.observe(scored(seq, 0.1));
  await t.coordinator.idle();
  assertEquals(t.coordinator.status().scheduler.driftBaseline, 0.1);
  // The scene changes: the window's median triples, drift fires, collection starts.
  for (let seq = 13; seq < 16; seq++) t.coordinator.observe(scored(seq, 0.3));
  await until(
    () => of(t.events, "collecting").some((e) => e.trigger === "drift"),
    "drift collection",
  );
  const collecting = of(t.events, "collecting").find((e) => e.trigger === "drift")!;
  assertOk(collecting.note?.startsWith("drift: median score 0.3"), collecting.note);
  assertEquals(collecting.needed, 5);
  assertEquals(t.swaps.length, 1);
  // Two more frames of the new scene make five since the drift began (frames 13 to 17).
  for (let seq = 16; seq < 18; seq++) t.coordinator.observe(scored(seq, 0.3));
  await until(() => t.swaps.length === 2, "drift promotion");
  await t.coordinator.idle();
  const promoted = expectState(t.events.at(-1), "promoted");
  assertEquals([promoted.state, promoted.trigger], ["promoted", "drift"]);
  assertOk(promoted.triggerReason?.startsWith("drift:"), promoted.triggerReason);
  // 5 frames since the drift began, 2 held out for validation: 3 to train on (not the 6
  // older ones of the old scene).
  const lines = t.coordinator.status().scheduler.lastResult?.lastLines ?? [];
  assertOk(lines.some((l) => l.includes("data 3 files")), lines.join("\n"));
  // The baseline is taken again from the new model's first window.
  assertEquals(t.coordinator.status().scheduler.driftBaseline, undefined);
});

Deno.test("RetrainCoordinator() publishes a failing store once a minute and keeps going", async () => {
  let now = 5_000_000;
  const root = await Deno.makeTempDir({ prefix: "coordinator-full-" });
  try {
    const full = () => Promise.reject(new Error("No space left on device (os error 28)"));
    await using t = await setup({
      store: await FrameStore.open(join(root, "store"), { writeFile: full }),
      now: () => now,
    });
    for (let seq = 0; seq < 3; seq++) {
      t.coordinator.observe(scored(seq));
      await t.coordinator.idle();
    }
    const told = t.events.filter((e) => e.storeError !== undefined);
    assertEquals(told.length, 1);
    assertEquals(told[0]!.state, "collecting");
    assertOk(told[0]!.storeError!.includes("No space left on device"), told[0]!.storeError);
    assertOk(told[0]!.storeError!.includes("inspection goes on"), told[0]!.storeError);
    now += 61_000;
    t.coordinator.observe(scored(3));
    await t.coordinator.idle();
    assertEquals(t.events.filter((e) => e.storeError !== undefined).length, 2);
    assertOk(t.coordinator.status().store.writeErrors >= 4);
    assertEquals(t.coordinator.status().scheduler.runs, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("RetrainCoordinator.collect() stores frames of a learning camera without a score", async () => {
  await using t = await setup({ bootstrapFrames: 5 });
  t.coordinator.collect(frame(0));
  t.coordinator.collect(frame(1));
  await t.coordinator.idle();
  const stored = t.store.list();
  assertEquals(stored.map((f) => [f.seq, f.score]), [[0, undefined], [1, undefined]]);
  const last = expectState(t.events.at(-1), "collecting");
  assertEquals([last.state, last.trigger, last.collected, last.needed], [
    "collecting",
    "bootstrap",
    2,
    5,
  ]);
});
