import { assertAlmostEquals, assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { resolveConfig } from "../model/config.ts";
import { expectedStateDict } from "../model/architecture.ts";
import { ImageSet } from "./data.ts";
import { PenaltyImages } from "./penalty.ts";
import { StubStep, writePngs } from "./_test_utils.ts";
import {
  type CheckpointReason,
  computeTeacherNorm,
  initialWeights,
  learningRate,
  type LoopState,
  runTraining,
  type TrainStepInit,
} from "./loop.ts";

const CONFIG = resolveConfig();

function init(): TrainStepInit {
  const params = new Map([["student.conv1.bias", { shape: [2], data: new Float32Array(2) }]]);
  return { config: CONFIG, teacher: new Map(), params, seed: 0 };
}

async function withData(
  fn: (images: ImageSet, penaltyDir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writePngs(`${dir}/train`, 3, { width: 5, height: 4 });
    await writePngs(`${dir}/penalty`, 2, { width: 6, height: 6 });
    await fn(new ImageSet(paths, [4, 4]), `${dir}/penalty`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("learningRate() is 1e-4, then 1e-5 from step int(0.95 * total) as StepLR", () => {
  assertEquals(learningRate(0, 70000), 1e-4);
  assertEquals(learningRate(66499, 70000), 1e-4);
  assertAlmostEquals(learningRate(66500, 70000), 1e-5, 1e-20);
  assertAlmostEquals(learningRate(69999, 70000), 1e-5, 1e-20);
  assertEquals(learningRate(0, 1), 1e-4);
  assertEquals(learningRate(9, 20), 1e-4);
  assertAlmostEquals(learningRate(19, 20), 1e-5, 1e-20);
});

Deno.test("initialWeights() draws every student and ae tensor within +-1/sqrt(fan_in)", () => {
  const w = initialWeights(CONFIG, ["student", "ae"], 0);
  const expected = [...expectedStateDict(CONFIG).keys()].filter((k) =>
    k.startsWith("student.") || k.startsWith("ae.")
  );
  assertEquals([...w.keys()], expected);
  const conv1 = w.get("student.conv1.weight")!;
  assertEquals(conv1.shape, [128, 3, 4, 4]);
  const bound = 1 / Math.sqrt(3 * 16);
  assertOk(conv1.data.every((v) => Math.abs(v) <= bound));
  assertOk(w.get("student.conv1.bias")!.data.every((v) => Math.abs(v) <= bound));
  assertEquals(
    initialWeights(CONFIG, ["student"], 0).get("student.conv4.bias"),
    w.get("student.conv4.bias"),
  );
  assertOk(
    initialWeights(CONFIG, ["student"], 1).get("student.conv4.bias")!.data[0] !==
      w.get("student.conv4.bias")!.data[0],
  );
});

Deno.test("computeTeacherNorm() gives the channels' mean and population std over all images", async () => {
  await withData(async (images) => {
    const step = new StubStep(init());
    const norm = await computeTeacherNorm(step, images);
    assertEquals(norm.mean.length, 384);
    // By hand for channel 5 over the 3 images x 4 positions.
    const values: number[] = [];
    for (let i = 0; i < images.length; i++) {
      const f = await step.teacherFeatures(await images.get(i));
      values.push(...f.data.subarray(5 * 4, 6 * 4));
    }
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    assertAlmostEquals(norm.mean[5]!, mean, 1e-5);
    assertAlmostEquals(norm.std[5]!, std, 1e-4);
    const ac = new AbortController();
    ac.abort();
    await assertRejects(() => computeTeacherNorm(step, images, { signal: ac.signal }), Error);
  });
});

Deno.test("runTraining() steps with the schedule and checkpoints every K steps and at the end", async () => {
  await withData(async (images, penaltyDir) => {
    const step = new StubStep(init());
    const penalty = await PenaltyImages.open(penaltyDir, [4, 4], { seed: 1 });
    const checkpoints: [number, CheckpointReason][] = [];
    const events: number[] = [];
    const result = await runTraining(step, {
      totalSteps: 20,
      images,
      penalty,
      seed: 1,
      checkpointEvery: 8,
      onCheckpoint: (s, r) => {
        checkpoints.push([s.step, r]);
        return Promise.resolve();
      },
      onStep: (e) => events.push(e.step),
    });
    assertEquals(checkpoints, [[8, "periodic"], [16, "periodic"], [20, "final"]]);
    assertEquals(events, Array.from({ length: 20 }, (_, i) => i + 1));
    assertEquals(result.interrupted, false);
    assertEquals(result.state.step, 20);
    assertEquals(step.seen.map((b) => b.lr).filter((lr) => lr < 1e-4).length, 1);
    assertOk(step.seen.every((b) => b.penalty !== undefined));
    assertOk(step.seen.every((b) => b.factor >= 0.8 && b.factor <= 1.2));
    assertEquals(new Set(step.seen.map((b) => b.kind)).size, 3);
    assertAlmostEquals(result.lastLosses!.loss, 1.75 / 20, 1e-12);
  });
});

Deno.test("runTraining() stops on abort after the current step, and a resume continues exactly", async () => {
  await withData(async (images, penaltyDir) => {
    const whole = new StubStep(init());
    await runTraining(whole, {
      totalSteps: 12,
      images,
      penalty: await PenaltyImages.open(penaltyDir, [4, 4], { seed: 2 }),
      seed: 2,
    });

    const ac = new AbortController();
    const first = new StubStep(init());
    first.afterStep = (i) => {
      if (i === 4) ac.abort();
    };
    let saved: LoopState | undefined;
    let reason: CheckpointReason | undefined;
    const r1 = await runTraining(first, {
      totalSteps: 12,
      images,
      penalty: await PenaltyImages.open(penaltyDir, [4, 4], { seed: 2 }),
      seed: 2,
      signal: ac.signal,
      onCheckpoint: (s, why) => {
        saved = s;
        reason = why;
        return Promise.resolve();
      },
    });
    assertEquals(r1.interrupted, true);
    assertEquals(reason, "interrupted");
    assertEquals(saved!.step, 5);
    assertEquals(first.seen.length, 5);

    const second = new StubStep(init());
    const r2 = await runTraining(second, {
      totalSteps: 12,
      images,
      penalty: await PenaltyImages.open(penaltyDir, [4, 4], { seed: 2, state: saved!.penalty! }),
      seed: 2,
      resume: saved!,
    });
    assertEquals(r2.interrupted, false);
    assertEquals([...first.seen, ...second.seen], whole.seen);
  });
});

Deno.test("runTraining() rejects bad step counts and passes step errors on", async () => {
  await withData(async (images) => {
    const step = new StubStep(init());
    await assertRejects(
      () => runTraining(step, { totalSteps: 0, images, seed: 0 }),
      RangeError,
      "positive integer",
    );
    await assertRejects(
      () =>
        runTraining(step, {
          totalSteps: 2,
          images,
          seed: 0,
          resume: { step: 3, sampler: { epoch: 0, position: 0 }, augment: 1 },
        }),
      RangeError,
      "only 2 steps",
    );
    step.failAt = 1;
    await assertRejects(
      () => runTraining(step, { totalSteps: 3, images, seed: 0 }),
      Error,
      "stub failure",
    );
  });
});
