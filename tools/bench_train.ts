/**
 * Times the ONNX training graphs at the model's image size on the CPU provider: the
 * teacher forward, the student's hard-loss forward + backward, and the whole student step
 * (hard + penalty + student-autoencoder losses, backward, Adam), and the whole step with the
 * autoencoder's forward, loss and backward and dropout masks in the graph too. Random
 * weights and inputs.
 *
 * Run: `deno run -A tools/bench_train.ts [s|m] [threads] [repeats]`; prints JSON.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import * as ort from "onnxruntime-node";
import type { Tensor } from "../src/core/tensor.ts";
import { networkOutputSize, networks } from "../src/model/architecture.ts";
import { type ModelSize, resolveConfig } from "../src/model/config.ts";
import { syntheticStateDict } from "../src/model/synthetic.ts";
import { createSession, type RuntimeSession } from "../src/infer/onnx/session.ts";
import {
  adamNames,
  adamScalars,
  aeParameters,
  buildTrainStepGraph,
  dropoutName,
  dropoutShapes,
  studentParameters,
  type TrainStepOptions,
} from "../src/train/onnx/train_step_graph.ts";
import { buildTeacherGraph } from "../src/train/onnx/teacher_graph.ts";
import { OnnxTrainer } from "../src/train/onnx/trainer.ts";

/**
 * Median and minimum wall seconds per call of one graph, and the median process CPU
 * seconds per call (all threads; on a busy machine CPU / threads bounds the quiet wall time).
 */
export interface Timing {
  readonly median: number;
  readonly min: number;
  readonly cpu: number;
}

/** Times `repeats` runs after one warm-up run. */
async function time(
  session: RuntimeSession,
  feeds: Record<string, ort.Tensor>,
  repeats: number,
): Promise<Timing> {
  await session.run(feeds);
  const times: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = cpuUsage();
    const t0 = performance.now();
    await session.run(feeds);
    times.push((performance.now() - t0) / 1000);
    const c = cpuUsage(c0);
    cpus.push((c.user + c.system) / 1e6);
  }
  const median = (v: number[]) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? NaN;
  return { median: median(times), min: Math.min(...times), cpu: median(cpus) };
}

/** Runs the benchmark and returns the timings in seconds per call. */
export async function benchTrainGraphs(
  size: ModelSize,
  threads: number,
  repeats: number,
): Promise<Record<string, Timing>> {
  const config = resolveConfig({ size });
  const sd = syntheticStateDict(config, 0);
  const [H, W] = config.imageSize;
  const c = config.teacherOutChannels;
  const [h, w] = networkOutputSize(networks(config).student, [H, W]);
  const rand = (shape: number[]): ort.Tensor => {
    const t: Tensor = { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    for (let i = 0; i < t.data.length; i++) t.data[i] = (Math.sin(i * 12.9898) + 1) / 2;
    return new ort.Tensor("float32", t.data, shape);
  };
  const image = rand([1, 3, H, W]);
  const out: Record<string, Timing> = {};
  const teacher = await createSession(buildTeacherGraph(config, sd), { intraOpThreads: threads });
  try {
    out["teacher_forward"] = await time(teacher.session, { input: image }, repeats);
    out["teacher_forward_batch2"] = await time(
      teacher.session,
      { input: rand([2, 3, H, W]) },
      repeats,
    );
  } finally {
    await teacher.session.release();
  }
  const variants: [string, TrainStepOptions][] = [
    ["student_hard_forward_backward", {}],
    ["student_step_hard_penalty_stae_adam", { penalty: true, stae: true, adam: {} }],
    ["whole_step_student_and_autoencoder_adam", {
      penalty: true,
      stae: true,
      adam: {},
      autoencoder: { dropout: true },
    }],
  ];
  for (const [name, options] of variants) {
    const feeds: Record<string, ort.Tensor> = { input: image, teacher: rand([1, c, h, w]) };
    if (options.penalty) feeds["penalty"] = image;
    if (options.stae) {
      feeds["augmented"] = image;
      if (options.autoencoder) {
        feeds["teacher_augmented"] = rand([1, c, h, w]);
        for (const [layer, shape] of dropoutShapes(config)) {
          const mask = new Float32Array(shape.reduce((a, b) => a * b, 1));
          for (let i = 0; i < mask.length; i++) mask[i] = i % 5 === 0 ? 0 : 1.25;
          feeds[dropoutName(layer)] = new ort.Tensor("float32", mask, shape);
        }
      } else {
        feeds["ae_output"] = rand([1, c, h, w]);
      }
    }
    if (options.adam) {
      const { stepSize, biasCorrection2Sqrt } = adamScalars(1e-4, 1);
      feeds["adam.step_size"] = new ort.Tensor("float32", Float32Array.of(stepSize), []);
      feeds["adam.bias_correction2_sqrt"] = new ort.Tensor(
        "float32",
        Float32Array.of(biasCorrection2Sqrt),
        [],
      );
    }
    const params = [
      ...studentParameters(config),
      ...(options.autoencoder ? aeParameters(config) : []),
    ];
    for (const p of params) {
      const v = sd.get(p.name);
      if (v === undefined) throw new RangeError(`missing ${p.name}`);
      feeds[p.name] = new ort.Tensor("float32", v.data, [...v.shape]);
      if (options.adam) {
        const n = adamNames(p.name);
        feeds[n.m] = new ort.Tensor("float32", new Float32Array(v.data.length), [...v.shape]);
        feeds[n.v] = new ort.Tensor("float32", new Float32Array(v.data.length), [...v.shape]);
      }
    }
    const s = await createSession(buildTrainStepGraph(config, options), {
      intraOpThreads: threads,
    });
    try {
      out[name] = await time(s.session, feeds, repeats);
    } finally {
      await s.session.release();
    }
  }
  // The trainer: teacher on x and x_aug (batch 2), the whole step with dropout, Adam, and
  // the JavaScript around them (masks, feeding the state back).
  await using trainer = await OnnxTrainer.create({ config, stateDict: sd, threads });
  const tensorOf = (t: ort.Tensor): Tensor => ({
    shape: [...t.dims],
    data: t.data as Float32Array,
  });
  const imgs = { x: tensorOf(image), penalty: tensorOf(image), augmented: tensorOf(image) };
  await trainer.trainStep(imgs, 1e-4);
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = cpuUsage();
    const t0 = performance.now();
    await trainer.trainStep(imgs, 1e-4);
    walls.push((performance.now() - t0) / 1000);
    const c = cpuUsage(c0);
    cpus.push((c.user + c.system) / 1e6);
  }
  walls.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  out["trainer_step"] = {
    median: walls[Math.floor(repeats / 2)] ?? NaN,
    min: walls[0] ?? NaN,
    cpu: cpus[Math.floor(repeats / 2)] ?? NaN,
  };
  return out;
}

if (import.meta.main) {
  const size = (Deno.args[0] ?? "s") as ModelSize;
  const threads = Number(Deno.args[1] ?? 2);
  const repeats = Number(Deno.args[2] ?? 5);
  console.log(JSON.stringify(await benchTrainGraphs(size, threads, repeats), null, 1));
}
