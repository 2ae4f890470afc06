/**
 * Training checkpoints and the trained model.
 *
 * A checkpoint is a directory:
 *
 * - `state-<step>.safetensors`: `teacher.*`, `student.*`, `ae.*`, `mean_std.*` (once
 *   computed) and Adam's moments as `adam.m.<name>` / `adam.v.<name>`;
 * - `checkpoint.json`: format, step, total steps, seed, architecture, the loop's and the
 *   step's random states, Adam's step count, the run's options, and the weights file's name.
 *
 * The weights are written first under a new name, then `checkpoint.json` replaces the old
 * one through a temporary file and a rename, then older weights are removed: a crash at
 * any point leaves a complete checkpoint, old or new.
 *
 * @module
 */
import { writeFileAtomic } from "../core/atomic_write.ts";
import { join } from "node:path";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import {
  configFromJson,
  type ConfigJson,
  configToJson,
  type EfficientAdConfig,
} from "../model/config.ts";
import type { EfficientAdModel } from "../model/model.ts";
import { writeProjectModel } from "../model/project_format.ts";
import { encodeSafetensors, readSafetensors } from "../model/safetensors.ts";
import type { StateDict } from "../model/state_dict.ts";
import { contentVersion } from "../model/artifact.ts";
import type { ImageSet } from "./data.ts";
import type {
  LoopState,
  OptimizerState,
  StepLosses,
  TeacherNorm,
  TrainSnapshot,
  TrainStep,
} from "./loop.ts";
import { type Calibration, calibrationFromMaps, type RawMaps } from "../model/calibration.ts";

/** The `format` of `checkpoint.json`. */
export const CHECKPOINT_FORMAT = "efficientad-edge-train/1";
/** The metadata file of a checkpoint directory. */
export const CHECKPOINT_JSON = "checkpoint.json";
/** `provenance.source` of a model made by training here. */
export const TRAIN_SOURCE = "efficientad-edge train";

/** A JSON value for the free-form `options` of a checkpoint. */
export type JsonScalar = string | number | boolean | null;

/** A training run's full state. */
export interface TrainCheckpoint {
  readonly config: EfficientAdConfig;
  readonly seed: number;
  readonly totalSteps: number;
  readonly loop: LoopState;
  /** `teacher.*` weights. */
  readonly teacher: StateDict;
  readonly snapshot: TrainSnapshot;
  /** Absent until the statistics have been computed. */
  readonly teacherNorm?: TeacherNorm;
  /** The run's settings (data folder, penalty folder, teacher path, ...), for resuming. */
  readonly options: Readonly<Record<string, JsonScalar>>;
  /** The last step's losses. */
  readonly losses?: StepLosses;
}

interface CheckpointJson {
  format: string;
  step: number;
  total_steps: number;
  seed: number;
  config: ConfigJson;
  weights: string;
  optimizer_steps: number;
  random?: number;
  loop: LoopState;
  options: Record<string, JsonScalar>;
  losses?: StepLosses;
  created_at: string;
}

function normTensor(values: Float32Array): Tensor {
  return { shape: [1, values.length, 1, 1], data: values };
}

/**
 * Writes a checkpoint to `dir` (created when needed), atomically as described above.
 *
 * @throws {RangeError} when a tensor's data does not fit its shape; file-system errors.
 */
export async function writeCheckpoint(dir: string, ckpt: TrainCheckpoint): Promise<void> {
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of ckpt.teacher) tensors.set(k, v);
  for (const [k, v] of ckpt.snapshot.params) tensors.set(k, v);
  for (const [k, v] of ckpt.snapshot.optimizer.m) tensors.set(`adam.m.${k}`, v);
  for (const [k, v] of ckpt.snapshot.optimizer.v) tensors.set(`adam.v.${k}`, v);
  if (ckpt.teacherNorm) {
    tensors.set("mean_std.mean", normTensor(ckpt.teacherNorm.mean));
    tensors.set("mean_std.std", normTensor(ckpt.teacherNorm.std));
  }
  const weights = `state-${String(ckpt.loop.step).padStart(8, "0")}.safetensors`;
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(
    join(dir, weights),
    encodeSafetensors(tensors, { metadata: { format: CHECKPOINT_FORMAT } }),
  );
  const c = ckpt.config;
  const json: CheckpointJson = {
    format: CHECKPOINT_FORMAT,
    step: ckpt.loop.step,
    total_steps: ckpt.totalSteps,
    seed: ckpt.seed,
    config: configToJson(c),
    weights,
    optimizer_steps: ckpt.snapshot.optimizer.steps,
    ...(ckpt.snapshot.random !== undefined ? { random: ckpt.snapshot.random } : {}),
    loop: ckpt.loop,
    options: { ...ckpt.options },
    ...(ckpt.losses ? { losses: ckpt.losses } : {}),
    created_at: new Date().toISOString(),
  };
  await writeFileAtomic(
    join(dir, CHECKPOINT_JSON),
    new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n"),
  );
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^state-\d+\.safetensors$/.test(e.name) && e.name !== weights) {
      await Deno.remove(join(dir, e.name)).catch(() => {});
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

function checkJson(v: unknown): string | undefined {
  if (!isRecord(v)) return "not a JSON object";
  if (v.format !== CHECKPOINT_FORMAT) {
    return `format is ${JSON.stringify(v.format)}, expected "${CHECKPOINT_FORMAT}"`;
  }
  for (const k of ["step", "total_steps", "seed", "optimizer_steps"]) {
    if (!isInt(v[k])) return `${k} is not a non-negative integer`;
  }
  if (typeof v.weights !== "string" || !/^state-\d+\.safetensors$/.test(v.weights)) {
    return "weights does not name a state file";
  }
  if (!isRecord(v.config)) return "config is missing";
  const loop = v.loop;
  if (!isRecord(loop) || !isInt(loop.step) || !isInt(loop.augment) || !isRecord(loop.sampler)) {
    return "loop state is missing or malformed";
  }
  if (!isInt(loop.sampler.epoch) || !isInt(loop.sampler.position)) {
    return "loop.sampler is malformed";
  }
  if (!isRecord(v.options)) return "options is missing";
  return undefined;
}

/**
 * Reads a checkpoint directory written by {@linkcode writeCheckpoint}.
 *
 * @throws {InputError} naming the directory when `checkpoint.json` or the weights are
 * missing, unreadable or malformed.
 */
export async function readCheckpoint(dir: string): Promise<TrainCheckpoint> {
  const jsonPath = join(dir, CHECKPOINT_JSON);
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? `no ${CHECKPOINT_JSON} (not a training checkpoint)`
      : errorMessage(e);
    throw new InputError(`Cannot resume from ${dir}: ${why}`, { cause: e });
  }
  const problem = checkJson(value);
  if (problem !== undefined) throw new InputError(`Cannot resume from ${dir}: ${problem}`);
  const json = value as CheckpointJson;
  let config: EfficientAdConfig;
  try {
    config = configFromJson(json.config);
  } catch (e) {
    throw new InputError(`Cannot resume from ${dir}: config: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  let tensors: Map<string, Tensor>;
  try {
    tensors = (await readSafetensors(join(dir, json.weights))).tensors;
  } catch (e) {
    throw new InputError(`Cannot resume from ${dir}: ${errorMessage(e)}`, { cause: e });
  }
  const teacher: StateDict = new Map();
  const params: StateDict = new Map();
  const m = new Map<string, Tensor>();
  const v = new Map<string, Tensor>();
  let mean: Float32Array | undefined;
  let std: Float32Array | undefined;
  for (const [k, t] of tensors) {
    if (k.startsWith("teacher.")) teacher.set(k, t);
    else if (k.startsWith("student.") || k.startsWith("ae.")) params.set(k, t);
    else if (k.startsWith("adam.m.")) m.set(k.slice(7), t);
    else if (k.startsWith("adam.v.")) v.set(k.slice(7), t);
    else if (k === "mean_std.mean") mean = t.data;
    else if (k === "mean_std.std") std = t.data;
  }
  if (teacher.size === 0 || params.size === 0) {
    throw new InputError(`Cannot resume from ${dir}: the state file lacks teacher or parameters`);
  }
  const optimizer: OptimizerState = { steps: json.optimizer_steps, m, v };
  return {
    config,
    seed: json.seed,
    totalSteps: json.total_steps,
    loop: json.loop,
    teacher,
    snapshot: {
      params,
      optimizer,
      ...(json.random !== undefined ? { random: json.random } : {}),
    },
    ...(mean && std ? { teacherNorm: { mean, std } } : {}),
    options: json.options,
    ...(json.losses ? { losses: json.losses } : {}),
  };
}

/** Options of {@linkcode calibrate}. */
export interface CalibrateOptions {
  /** Stops between images. */
  readonly signal?: AbortSignal;
}

/**
 * Runs the trained networks over the calibration images and computes
 * {@linkcode calibrationFromMaps}.
 *
 * @throws {RangeError} when the set is empty; errors of the step or the image reads.
 */
export async function calibrate(
  step: TrainStep,
  images: ImageSet,
  options: CalibrateOptions = {},
): Promise<Calibration> {
  const maps: RawMaps[] = [];
  for (let i = 0; i < images.length; i++) {
    options.signal?.throwIfAborted();
    maps.push(await step.maps(await images.get(i)));
  }
  return calibrationFromMaps(maps);
}

/** Options of {@linkcode trainedModel}. */
export interface TrainedModelOptions {
  /** Free-form provenance notes (data, steps, seed). */
  readonly notes?: string;
  /** The model version; default a hash of the weights. */
  readonly version?: string;
}

function scalar(v: number): Tensor {
  return { shape: [], data: Float32Array.of(v) };
}

/**
 * Turns a checkpoint and its calibration into a project model (teacher, student, ae,
 * mean_std, quantiles, thresholds), provenance source {@linkcode TRAIN_SOURCE}.
 *
 * @throws {RangeError} when the checkpoint has no teacher statistics yet.
 */
export async function trainedModel(
  ckpt: TrainCheckpoint,
  calibration: Calibration,
  options: TrainedModelOptions = {},
): Promise<EfficientAdModel> {
  if (ckpt.teacherNorm === undefined) {
    throw new RangeError("Cannot make a model: the teacher statistics were never computed");
  }
  const dict: StateDict = new Map();
  for (const [k, v] of ckpt.teacher) dict.set(k, v);
  for (const [k, v] of ckpt.snapshot.params) dict.set(k, v);
  dict.set("mean_std.mean", normTensor(ckpt.teacherNorm.mean));
  dict.set("mean_std.std", normTensor(ckpt.teacherNorm.std));
  dict.set("quantiles.qa_st", scalar(calibration.qaSt));
  dict.set("quantiles.qb_st", scalar(calibration.qbSt));
  dict.set("quantiles.qa_ae", scalar(calibration.qaAe));
  dict.set("quantiles.qb_ae", scalar(calibration.qbAe));
  const version = options.version ??
    await contentVersion(encodeSafetensors(ckpt.snapshot.params));
  return {
    config: ckpt.config,
    stateDict: dict,
    thresholds: calibration.thresholds,
    provenance: {
      version,
      source: TRAIN_SOURCE,
      createdAt: new Date().toISOString(),
      ...(options.notes !== undefined ? { notes: options.notes } : {}),
    },
    resize: "bilinear",
  };
}

/**
 * {@linkcode trainedModel}, written as a project model directory.
 *
 * @throws as {@linkcode trainedModel} and `writeProjectModel`.
 */
export async function writeTrainedModel(
  dir: string,
  ckpt: TrainCheckpoint,
  calibration: Calibration,
  options: TrainedModelOptions = {},
): Promise<EfficientAdModel> {
  const model = await trainedModel(ckpt, calibration, options);
  await writeProjectModel(dir, model);
  return model;
}
