/**
 * The schedule around EfficientAD's training step: the teacher's channel statistics
 * before the first step, then one image, one penalty image and one augmentation per step,
 * the learning rate (1e-4, times 0.1 after 95 % of the steps, as anomalib's `StepLR`),
 * periodic checkpoints, and a clean stop on an abort signal.
 *
 * The numerical step itself is behind {@linkcode TrainStep}, so the loop is tested with a
 * stub and any backend can provide the step.
 *
 * @module
 */
import type { RawMaps } from "../model/calibration.ts";
import { assertPositiveInteger } from "../core/check.ts";
import type { Tensor } from "../core/tensor.ts";
import type { EfficientAdConfig } from "../model/config.ts";
import { expectedStateDict } from "../model/architecture.ts";
import type { StateDict } from "../model/state_dict.ts";
import { uniformStream } from "../model/synthetic.ts";
import { type Augmentation, randomAugmentation } from "./augment.ts";
import { ChannelStats } from "./stats.ts";
import {
  deriveSeed,
  EpochSampler,
  type ImageSet,
  type SamplerState,
  SeededRandom,
} from "./data.ts";
import type { PenaltyImages, PenaltyState } from "./penalty.ts";

/** The recipe's learning rate before the decay. */
export const BASE_LR = 1e-4;
/** The fraction of the steps after which the learning rate is multiplied by 0.1. */
export const DECAY_AT = 0.95;

/** What one step trains on. */
export interface TrainBatch {
  /** 0-based index of this step. */
  readonly step: number;
  /** The learning rate of this step. */
  readonly lr: number;
  /** The training image, 1 x 3 x H x W in [0, 1]. */
  readonly image: Tensor;
  /** The penalty image, 1 x 3 x H x W in [0, 1]; absent when training without one. */
  readonly penalty?: Tensor;
  /** The autoencoder branch's augmentation. */
  readonly augmentation: Augmentation;
}

/** The losses of one step (before the update). */
export interface StepLosses {
  /** loss_hard + loss_penalty. */
  readonly lossSt: number;
  /** mean((t_norm(x_aug) - ae(x_aug))^2). */
  readonly lossAe: number;
  /** mean((ae(x_aug) - s(x_aug)[:, C:])^2). */
  readonly lossStae: number;
  /** The sum of the three. */
  readonly loss: number;
}

/** The teacher's per-channel output mean and population std (`mean_std`). */
export interface TeacherNorm {
  /** One value per teacher output channel. */
  readonly mean: Float32Array;
  /** One value per teacher output channel. */
  readonly std: Float32Array;
}

/** Adam's state: steps taken, first and second moments by parameter name. */
export interface OptimizerState {
  /** Adam steps taken (the bias correction's t). */
  readonly steps: number;
  /** First moments, PyTorch layout, by parameter name. */
  readonly m: ReadonlyMap<string, Tensor>;
  /** Second moments, PyTorch layout, by parameter name. */
  readonly v: ReadonlyMap<string, Tensor>;
}

/** Everything a step owns that a checkpoint must keep. */
export interface TrainSnapshot {
  /** Student and autoencoder parameters (`student.*`, `ae.*`, PyTorch layout). */
  readonly params: StateDict;
  readonly optimizer: OptimizerState;
  /** The step's own random state (dropout), when it has one. */
  readonly random?: number;
}

/**
 * One training step's numerics, provided by a backend. The loop calls
 * `teacherFeatures` (statistics, unless resumed), `setTeacherNorm`, then `step` repeatedly,
 * `snapshot` for checkpoints and `maps` for calibration; then disposes it.
 */
export interface TrainStep extends AsyncDisposable {
  /** The frozen teacher's raw output for an image, 1 x C x h x w. */
  teacherFeatures(image: Tensor): Promise<Tensor>;
  /** Sets the teacher normalisation used by the losses and maps. */
  setTeacherNorm(norm: TeacherNorm): void;
  /** Runs forward, backward and the Adam update with `batch.lr`; returns the losses. */
  step(batch: TrainBatch): Promise<StepLosses>;
  /** The unnormalised maps (inference mode: no dropout) of an image. */
  maps(image: Tensor): Promise<RawMaps>;
  /** A copy of the trainable state. */
  snapshot(): Promise<TrainSnapshot>;
}

/** What a {@linkcode TrainStepFactory} starts from. */
export interface TrainStepInit {
  readonly config: EfficientAdConfig;
  /** The teacher's weights under `teacher.*` keys. */
  readonly teacher: StateDict;
  /** Student and autoencoder parameters (`student.*`, `ae.*`). */
  readonly params: StateDict;
  /** Adam's state when resuming. */
  readonly optimizer?: OptimizerState;
  /** The step's random state when resuming. */
  readonly random?: number;
  /** The run's seed. */
  readonly seed: number;
}

/** Makes a {@linkcode TrainStep}; the training command takes one. */
export type TrainStepFactory = (init: TrainStepInit) => Promise<TrainStep>;

/**
 * The learning rate of 0-based step `step` of `total`: anomalib's `StepLR` with
 * `step_size = int(0.95 * total)` and gamma 0.1, stepped once per step.
 */
export function learningRate(step: number, total: number, base: number = BASE_LR): number {
  const stepSize = Math.floor(DECAY_AT * total);
  if (stepSize <= 0) return base;
  return base * 0.1 ** Math.floor(step / stepSize);
}

/**
 * Initial parameters as PyTorch's default `Conv2d` initialisation draws them: weights and
 * biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)); deterministic in
 * `seed` (one xorshift stream per key, not PyTorch's generator).
 *
 * @param prefixes which networks, e.g. `["student", "ae"]` or `["teacher"]`.
 */
export function initialWeights(
  config: EfficientAdConfig,
  prefixes: readonly string[],
  seed: number,
): StateDict {
  const dict: StateDict = new Map();
  const shapes = expectedStateDict(config);
  for (const [key, shape] of shapes) {
    if (!prefixes.some((p) => key.startsWith(`${p}.`))) continue;
    const weightShape = shapes.get(key.replace(/\.bias$/, ".weight"))!;
    const fanIn = weightShape[1]! * weightShape[2]! * weightShape[3]!;
    const bound = 1 / Math.sqrt(fanIn);
    const next = uniformStream(key, seed);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (2 * next() - 1) * bound;
    dict.set(key, { shape: [...shape], data });
  }
  return dict;
}

/** Options of {@linkcode computeTeacherNorm}. */
export interface TeacherNormOptions {
  /** Stops between images; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called after each image with the count done. */
  readonly onImage?: (done: number, total: number) => void;
}

/**
 * The teacher's per-channel mean and population std over every training image (float64
 * sums over batch and positions, as anomalib's `teacher_channel_mean_std`).
 *
 * @throws {RangeError} when the set is empty; the signal's reason when aborted.
 */
export async function computeTeacherNorm(
  step: TrainStep,
  images: ImageSet,
  options: TeacherNormOptions = {},
): Promise<TeacherNorm> {
  let stats: ChannelStats | undefined;
  for (let i = 0; i < images.length; i++) {
    options.signal?.throwIfAborted();
    const f = await step.teacherFeatures(await images.get(i));
    const [n = 1, c = 1, h = 1, w = 1] = f.shape;
    stats ??= new ChannelStats(c);
    const plane = h * w;
    const hwc = new Float32Array(f.data.length);
    for (let b = 0; b < n; b++) {
      const base = b * c * plane;
      for (let k = 0; k < c; k++) {
        for (let p = 0; p < plane; p++) hwc[base + p * c + k] = f.data[base + k * plane + p]!;
      }
    }
    stats.add(hwc);
    options.onImage?.(i + 1, images.length);
  }
  if (stats === undefined) throw new RangeError("Cannot compute teacher statistics of no images");
  return stats.result();
}

/** Where the loop stands: enough to continue exactly. */
export interface LoopState {
  /** Steps completed. */
  readonly step: number;
  /** The training-image sampler's position. */
  readonly sampler: SamplerState;
  /** The augmentation generator's state. */
  readonly augment: number;
  /** The penalty stream's state, when there is one. */
  readonly penalty?: PenaltyState;
}

/** Why a checkpoint is written. */
export type CheckpointReason = "periodic" | "final" | "interrupted";

/** One completed step, for progress displays. */
export interface StepEvent {
  /** Steps completed (1-based). */
  readonly step: number;
  readonly total: number;
  readonly lr: number;
  readonly losses: StepLosses;
}

/** Options of {@linkcode runTraining}. */
export interface RunTrainingOptions {
  /** Steps of the whole run (the decay point depends on it). */
  readonly totalSteps: number;
  /** The training images. */
  readonly images: ImageSet;
  /** Penalty images; without them the batches carry none. */
  readonly penalty?: PenaltyImages;
  /** Seed of the order and the augmentations. */
  readonly seed: number;
  /** Continue from a checkpoint's loop state. */
  readonly resume?: LoopState;
  /** Write a checkpoint every this many steps (and always at the end). 0: only at the end. */
  readonly checkpointEvery?: number;
  /** Writes a checkpoint; awaited before training goes on. */
  readonly onCheckpoint?: (state: LoopState, reason: CheckpointReason) => Promise<void>;
  /** Called after every step. */
  readonly onStep?: (event: StepEvent) => void;
  /** Stops after the current step; a checkpoint is written (reason `interrupted`). */
  readonly signal?: AbortSignal;
  /** Learning rate before the decay. Default {@linkcode BASE_LR}. */
  readonly baseLr?: number;
}

/** What {@linkcode runTraining} ends with. */
export interface RunTrainingResult {
  readonly state: LoopState;
  /** True when stopped by the signal before `totalSteps`. */
  readonly interrupted: boolean;
  /** The losses of the last step run, when one ran. */
  readonly lastLosses?: StepLosses;
}

/**
 * Runs steps from `resume.step` (or 0) to `totalSteps`. Each step draws the next training
 * image from a seeded epoch sampler, the next penalty image, and an augmentation from a
 * seeded generator, so a run resumed from a checkpoint sees what the uninterrupted run
 * would have seen. The signal is checked between steps: an abort finishes the current
 * step, writes a checkpoint and returns with `interrupted: true`.
 *
 * @throws {RangeError} when `totalSteps` is not a positive integer or the resumed step
 * lies beyond it; whatever the step, the images or `onCheckpoint` throw.
 */
export async function runTraining(
  step: TrainStep,
  options: RunTrainingOptions,
): Promise<RunTrainingResult> {
  const total = assertPositiveInteger(options.totalSteps, "totalSteps", "Cannot train");
  const start = options.resume?.step ?? 0;
  if (start > total) {
    throw new RangeError(`Cannot resume at step ${start}: the run has only ${total} steps`);
  }
  const every = options.checkpointEvery ?? 0;
  const sampler = new EpochSampler(options.images.length, options.seed, options.resume?.sampler);
  const augRandom = options.resume
    ? SeededRandom.fromState(options.resume.augment)
    : new SeededRandom(deriveSeed(options.seed, 200));
  const penalty = options.penalty;
  const stateAt = (completed: number): LoopState => ({
    step: completed,
    sampler: sampler.state,
    augment: augRandom.state,
    ...(penalty ? { penalty: penalty.state } : {}),
  });
  let lastLosses: StepLosses | undefined;
  let i = start;
  for (; i < total; i++) {
    if (options.signal?.aborted) break;
    const image = await options.images.get(sampler.next());
    const penaltyImage = penalty ? await penalty.next() : undefined;
    const augmentation = randomAugmentation(() => augRandom.next());
    const lr = learningRate(i, total, options.baseLr);
    lastLosses = await step.step({
      step: i,
      lr,
      image,
      augmentation,
      ...(penaltyImage ? { penalty: penaltyImage } : {}),
    });
    options.onStep?.({ step: i + 1, total, lr, losses: lastLosses });
    if (every > 0 && (i + 1) % every === 0 && i + 1 < total) {
      await options.onCheckpoint?.(stateAt(i + 1), "periodic");
    }
  }
  const interrupted = i < total;
  const state = stateAt(i);
  await options.onCheckpoint?.(state, interrupted ? "interrupted" : "final");
  return { state, interrupted, ...(lastLosses ? { lastLosses } : {}) };
}
