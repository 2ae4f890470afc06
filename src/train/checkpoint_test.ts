import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { resolveConfig } from "../model/config.ts";
import { readProjectModel } from "../model/project_format.ts";
import { quantilesOf } from "../model/state_dict.ts";
import {
  CHECKPOINT_JSON,
  readCheckpoint,
  TRAIN_SOURCE,
  type TrainCheckpoint,
  writeCheckpoint,
  writeTrainedModel,
} from "./checkpoint.ts";
import { initialWeights } from "./loop.ts";

const CONFIG = resolveConfig();

function t(values: number[], shape = [values.length]): Tensor {
  return { shape, data: Float32Array.from(values) };
}

function checkpoint(step: number): TrainCheckpoint {
  const params = initialWeights(CONFIG, ["student", "ae"], 1);
  const mean = new Float32Array(384).map((_, i) => i / 384);
  return {
    config: CONFIG,
    seed: 1,
    totalSteps: 100,
    loop: {
      step,
      sampler: { epoch: 2, position: 3 },
      augment: 12345,
      penalty: { sampler: { epoch: 0, position: 1 }, random: 99 },
    },
    teacher: initialWeights(CONFIG, ["teacher"], 2),
    snapshot: {
      params,
      optimizer: {
        steps: step,
        m: new Map([["student.conv1.bias", t([1, 2])]]),
        v: new Map([["student.conv1.bias", t([3, 4])]]),
      },
      random: 77,
    },
    teacherNorm: { mean, std: new Float32Array(384).fill(2) },
    options: { data: "/data/bottle", penalty: null, steps: 100 },
    losses: { lossSt: 1, lossAe: 2, lossStae: 3, loss: 6 },
  };
}

Deno.test("writeCheckpoint() round-trips through readCheckpoint() and keeps one state file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = checkpoint(10);
    await writeCheckpoint(dir, a);
    await writeCheckpoint(dir, checkpoint(20));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, [CHECKPOINT_JSON, "state-00000020.safetensors"]);
    const b = await readCheckpoint(dir);
    const c = checkpoint(20);
    assertEquals(b.loop, c.loop);
    assertEquals([b.seed, b.totalSteps, b.config], [c.seed, c.totalSteps, c.config]);
    assertEquals(b.options, c.options);
    assertEquals(b.losses, c.losses);
    assertEquals(b.snapshot.random, 77);
    assertEquals(b.snapshot.optimizer.steps, 20);
    assertEquals(b.snapshot.optimizer.m.get("student.conv1.bias")!.data, Float32Array.of(1, 2));
    assertEquals(b.snapshot.optimizer.v.get("student.conv1.bias")!.data, Float32Array.of(3, 4));
    assertEquals(
      b.snapshot.params.get("ae.decoder.deconv8.weight"),
      c.snapshot.params.get("ae.decoder.deconv8.weight"),
    );
    assertEquals(b.snapshot.params.size, c.snapshot.params.size);
    assertEquals(b.teacher.get("teacher.conv4.bias"), c.teacher.get("teacher.conv4.bias"));
    assertEquals(b.teacherNorm!.mean, c.teacherNorm!.mean);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readCheckpoint() explains what is wrong with a directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(() => readCheckpoint(dir), InputError, "not a training checkpoint");
    await Deno.writeTextFile(join(dir, CHECKPOINT_JSON), JSON.stringify({ format: "other" }));
    await assertRejects(() => readCheckpoint(dir), InputError, 'format is "other"');
    await writeCheckpoint(dir, checkpoint(1));
    await Deno.remove(join(dir, "state-00000001.safetensors"));
    await assertRejects(() => readCheckpoint(dir), InputError, "does not exist");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeTrainedModel() writes a project model with quantiles, thresholds and provenance", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const calibration = {
      qaSt: 1,
      qbSt: 2,
      qaAe: 3,
      qbAe: 4,
      thresholds: { threshold: 0.6, min: 0.1, max: 0.6 },
      images: 3,
    };
    await writeTrainedModel(dir, checkpoint(100), calibration, {
      notes: "data bottle; 100 steps; seed 1",
    });
    const model = await readProjectModel(dir);
    assertEquals(model.provenance.source, TRAIN_SOURCE);
    assertEquals(model.provenance.notes, "data bottle; 100 steps; seed 1");
    assertOk(model.provenance.version.startsWith("sha256-"));
    assertEquals(model.thresholds, calibration.thresholds);
    assertEquals(quantilesOf(model.stateDict), { qaSt: 1, qbSt: 2, qaAe: 3, qbAe: 4 });
    assertEquals(model.stateDict.get("mean_std.std")!.shape, [1, 384, 1, 1]);
    const bare = { ...checkpoint(1) };
    delete (bare as { teacherNorm?: unknown }).teacherNorm;
    await assertRejects(() => writeTrainedModel(dir, bare, calibration), RangeError, "statistics");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
