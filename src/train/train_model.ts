/**
 * Training as a library call: {@linkcode trainModel} teaches EfficientAD a product from
 * normal images and writes a project model directory (plus its ONNX graph), with periodic
 * checkpoints that `resume` continues from exactly, and an abort signal that stops it after
 * the current step with a usable checkpoint.
 *
 * The numerical step is injected ({@linkcode TrainStepFactory}); this module is the
 * plumbing around it: data, teacher, penalty images, schedule, checkpoints, calibration
 * and output. The `train` command parses its flags into {@linkcode TrainModelOptions}.
 *
 * @module
 */
import { quantizeModelDir } from "../quantize/quantize_dir.ts";
import type { Tensor } from "../core/tensor.ts";
import { join, resolve } from "node:path";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { loadTeacher } from "../model/artifact.ts";
import { type EfficientAdConfig, type ModelSize, resolveConfig } from "../model/config.ts";
import type { StateDict } from "../model/state_dict.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import type { ExecutionProvider } from "../infer/onnx/session.ts";
import { type CalibrationSource, DEFAULT_HOLDOUT, findTrainingData, ImageSet } from "./data.ts";
import { PenaltyImages } from "./penalty.ts";
import {
  calibrate,
  type JsonScalar,
  readCheckpoint,
  type TrainCheckpoint,
  writeCheckpoint,
  writeTrainedModel,
} from "./checkpoint.ts";
import {
  computeTeacherNorm,
  initialWeights,
  runTraining,
  type StepLosses,
  type TeacherNorm,
  type TrainStepFactory,
} from "./loop.ts";
import { ProgressDisplay, type ProgressWriter } from "./progress_display.ts";
import type { TrainProgress } from "./progress_event.ts";
import { DEFAULT_TEACHER_DIR, resolveTeacherPath } from "./teacher_fetch.ts";

/** Default number of steps: the paper's and anomalib's recipe. */
export const DEFAULT_STEPS = 70_000;
/** Default steps between checkpoints. */
export const DEFAULT_CHECKPOINT_EVERY = 500;

/** Where the training step runs (no default here: the CLI's is `retrain.training.engine`'s). */
export type TrainEngine = "onnx" | "tfjs";

/**
 * What to train. Settings left out take their defaults, or when resuming, the
 * checkpoint's (a resumed run keeps its settings: one given that differs is an error).
 */
export interface TrainSettings {
  /** The folder of normal images: PNG/JPEG files or an MVTec-style category. Required unless resuming. */
  readonly data?: string;
  /** Where the project model is written. Required unless resuming. */
  readonly out?: string;
  /** EfficientAD size. Default `s`, or the teacher's. */
  readonly size?: ModelSize;
  /** Training steps. Default {@linkcode DEFAULT_STEPS}. */
  readonly steps?: number;
  /** Training image size, height and width. Default 256 x 256. */
  readonly imageSize?: readonly [number, number];
  /** A teacher `.pth`, a `teacher fetch` folder or a project model. Default: a random one. */
  readonly teacher?: string;
  /** Natural images for the penalty loss. Default: no penalty loss. */
  readonly penaltyImages?: string;
  /** Seed of the initial weights, data order and augmentation. Default 0. */
  readonly seed?: number;
  /** Images for quantiles and threshold. Default `split`. */
  readonly calibration?: CalibrationSource;
  /** Share of normal images held out with `split`. Default {@linkcode DEFAULT_HOLDOUT}. */
  readonly holdout?: number;
  /** Steps between checkpoints (0: only at the end). Default {@linkcode DEFAULT_CHECKPOINT_EVERY}. */
  readonly checkpointEvery?: number;
  /** Where checkpoints go. Default `<out>/checkpoint` (or the resumed one). */
  readonly checkpointDir?: string;
  /** Continue the run of this checkpoint directory. */
  readonly resume?: string;
  /** Where the step runs (when `step` is not given). */
  readonly engine: TrainEngine;
  /**
   * With the `onnx` engine: execution providers in order of preference (`webgpu` runs the
   * step on the GPU through Deno's WebGPU); the CPU is the last resort. Default `["cpu"]`.
   * Not a setting of the run: a resumed run may use others.
   */
  readonly executionProviders?: readonly ExecutionProvider[];
}

/** Options of {@linkcode trainModel}: the settings and how to report and stop. */
export interface TrainModelOptions extends TrainSettings {
  /** Where the run's messages go. */
  readonly log: Logger;
  /** The training step's backend. Default: the `engine`'s ({@linkcode defaultStepFactory}). */
  readonly step?: TrainStepFactory;
  /** Stops training after the current step, leaving a checkpoint. */
  readonly signal?: AbortSignal;
  /** Progress display: terminal bar or log lines (default: whether stdout is a terminal). */
  readonly terminal?: boolean;
  /** Where the progress bar goes. Default `Deno.stdout`. */
  readonly writer?: ProgressWriter;
  /** Log a progress line (and report progress) every this many steps. Default 10. */
  readonly logEvery?: number;
  /** Receives the progress every `logEvery` steps and at the last step. */
  readonly onProgress?: (progress: TrainProgress) => void;
  /**
   * Also write the int8 graph into `out`, calibrated on the calibration images (its own
   * quantiles and thresholds). A failure to build it leaves the fp32 model, with a warning.
   */
  readonly int8?: boolean;
  /**
   * Called once the training step is built, before the teacher's statistics: from then on
   * an abort of `signal` ends the run cleanly (before it, the run only notices at that point).
   */
  readonly onStarted?: () => void;
}

/** What {@linkcode trainModel} did. */
export interface TrainOutcome {
  /** Steps completed. */
  readonly step: number;
  readonly totalSteps: number;
  /** True when stopped by the signal (a checkpoint was written, no model). */
  readonly interrupted: boolean;
  readonly checkpointDir: string;
  /** The model directory, when training finished. */
  readonly out?: string;
  readonly lastLosses?: StepLosses;
}

/** What a run says when it uses a random teacher. */
export const UNTRAINED_TEACHER_WARNING =
  "no --teacher given: training with an UNTRAINED (randomly initialised) teacher. anomalib's " +
  "pretrained teacher gives far better results: run `deno task cli teacher fetch` (it " +
  `downloads anomalib's efficientad_pretrained_weights.zip into ${DEFAULT_TEACHER_DIR}; offline, ` +
  "pass the zip with `teacher fetch --from <zip>`), then train with " +
  `--teacher ${DEFAULT_TEACHER_DIR}`;

/**
 * The training step of an engine, loaded on first use (so that nothing else loads ONNX
 * Runtime's training graphs or TensorFlow.js).
 *
 * @throws {InputError} "training is not available" with the reason when the TensorFlow.js
 * step cannot load.
 */
export async function defaultStepFactory(
  engine: TrainEngine,
  options: { executionProviders?: readonly ExecutionProvider[]; logger?: Logger } = {},
): Promise<TrainStepFactory> {
  if (engine === "onnx") {
    const { onnxTrainStepFactory } = await import("./onnx/train_step.ts");
    return onnxTrainStepFactory(options);
  }
  try {
    const { tfjsTrainStepFactory } = await import("./tfjs/train_step.ts");
    return tfjsTrainStepFactory();
  } catch (e) {
    throw new InputError(
      `Cannot train: training is not available in this build (the TensorFlow.js training ` +
        `step did not load: ${errorMessage(e)}); the input checks passed`,
      { cause: e },
    );
  }
}

/** The settings of a run, all resolved (what a checkpoint stores as `options`). */
interface RunSettings {
  data: string;
  out: string;
  steps: number;
  seed: number;
  teacher: string | null;
  penalty: string | null;
  calibration: CalibrationSource;
  holdout: number;
}

function str(v: JsonScalar | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Merges the settings with a checkpoint's; a setting that contradicts it is an error. */
function resumeSettings(given: TrainSettings, ckpt: TrainCheckpoint, dir: string): RunSettings {
  const o = ckpt.options;
  const saved: RunSettings = {
    data: str(o.data) ?? "",
    out: str(o.out) ?? "",
    steps: ckpt.totalSteps,
    seed: ckpt.seed,
    teacher: str(o.teacher) ?? null,
    penalty: str(o.penalty) ?? null,
    calibration: o.calibration === "test-good" ? "test-good" : "split",
    holdout: typeof o.holdout === "number" ? o.holdout : DEFAULT_HOLDOUT,
  };
  const clash = (flag: string, value: unknown, kept: unknown) => {
    if (value !== undefined && value !== kept) {
      throw new InputError(
        `Cannot resume from ${dir}: --${flag} ${String(value)} differs from the run's ${
          String(kept)
        } (a resumed run keeps its settings)`,
      );
    }
  };
  clash("steps", given.steps, saved.steps);
  clash("seed", given.seed, saved.seed);
  clash("size", given.size, ckpt.config.size);
  clash("calibration", given.calibration, saved.calibration);
  clash("holdout", given.holdout, saved.holdout);
  if (given.imageSize) {
    clash("image-size", given.imageSize.join("x"), ckpt.config.imageSize.join("x"));
  }
  if (given.data !== undefined) clash("data", resolve(given.data), resolve(saved.data));
  return { ...saved, ...(given.out !== undefined ? { out: given.out } : {}) };
}

function newSettings(given: TrainSettings): RunSettings {
  if (given.data === undefined || given.out === undefined) {
    throw new InputError("Cannot train: data and out are required unless resuming");
  }
  return {
    data: given.data,
    out: given.out,
    steps: given.steps ?? DEFAULT_STEPS,
    seed: given.seed ?? 0,
    teacher: given.teacher ?? null,
    penalty: given.penaltyImages ?? null,
    calibration: given.calibration ?? "split",
    holdout: given.holdout ?? DEFAULT_HOLDOUT,
  };
}

function prefixed(dict: StateDict, prefix: string): StateDict {
  return new Map([...dict].map(([k, v]) => [`${prefix}${k}`, v]));
}

/** The teacher and architecture of a new run (`settings.teacher` becomes the path used). */
async function newTeacher(
  options: TrainModelOptions,
  settings: RunSettings,
): Promise<{ config: EfficientAdConfig; teacher: StateDict }> {
  const log = options.log;
  let size: ModelSize = options.size ?? "s";
  let outChannels = 384;
  let teacher: StateDict = new Map();
  if (settings.teacher !== null) {
    const path = await resolveTeacherPath(settings.teacher, size);
    const t = await loadTeacher(path);
    if (options.size !== undefined && t.size !== options.size) {
      throw new InputError(
        `Cannot train size ${options.size.toUpperCase()} with teacher ${path}: it is a size ` +
          `${t.size.toUpperCase()} teacher`,
      );
    }
    size = t.size;
    outChannels = t.outChannels;
    teacher = prefixed(t.stateDict, "teacher.");
    settings.teacher = path;
    log.info("teacher loaded", { path, size, channels: outChannels });
  } else {
    log.warn(UNTRAINED_TEACHER_WARNING);
  }
  let config: EfficientAdConfig;
  try {
    config = resolveConfig({
      size,
      teacherOutChannels: outChannels,
      ...(options.imageSize ? { imageSize: options.imageSize } : {}),
    });
  } catch (e) {
    throw new InputError(`Cannot train: ${errorMessage(e)}`, { cause: e });
  }
  if (teacher.size === 0) teacher = initialWeights(config, ["teacher"], settings.seed);
  return { config, teacher };
}

/**
 * Trains a model (see the module doc). Resolves when the model is written, or when the
 * signal stopped the run (`interrupted`, with a checkpoint that `resume` continues).
 *
 * @throws {InputError} on unusable data or penalty folders, missing `data` / `out` without
 * `resume`, a teacher of the wrong size, a checkpoint that does not match, an abort before
 * the first step, or when the training step cannot load; `ModelFormatError` when the
 * teacher cannot be read.
 */
export async function trainModel(options: TrainModelOptions): Promise<TrainOutcome> {
  const log = options.log;
  const ckpt = options.resume !== undefined ? await readCheckpoint(options.resume) : undefined;
  const settings = ckpt && options.resume !== undefined
    ? resumeSettings(options, ckpt, options.resume)
    : newSettings(options);
  if (ckpt && options.teacher !== undefined) {
    log.warn("--teacher is ignored when resuming: the checkpoint holds the run's teacher");
  }
  const { config, teacher } = ckpt
    ? { config: ckpt.config, teacher: ckpt.teacher }
    : await newTeacher(options, settings);

  // Data.
  const data = await findTrainingData(settings.data, {
    calibration: settings.calibration,
    holdout: settings.holdout,
    seed: settings.seed,
  });
  const images = new ImageSet(data.train, config.imageSize);
  const calibrationImages = new ImageSet(data.calibration, config.imageSize);
  log.info("training data", {
    data: settings.data,
    layout: data.layout,
    train: data.train.length,
    calibration: data.calibration.length,
    calibration_source: data.calibrationSource,
  });
  let penalty: PenaltyImages | undefined;
  if (settings.penalty !== null) {
    penalty = await PenaltyImages.open(settings.penalty, config.imageSize, {
      seed: settings.seed,
      ...(ckpt?.loop.penalty ? { state: ckpt.loop.penalty } : {}),
    });
    log.info("penalty images", { folder: settings.penalty, images: penalty.count });
  } else {
    log.warn(
      "no --penalty-images given: training without the penalty loss; anomalib uses natural " +
        "images (ImageNet / Imagenette) there",
    );
  }

  const factory = options.step ?? await defaultStepFactory(options.engine, {
    ...(options.executionProviders ? { executionProviders: options.executionProviders } : {}),
    logger: log,
  });

  const checkpointDir = options.checkpointDir ?? options.resume ??
    join(settings.out, "checkpoint");
  const params = ckpt?.snapshot.params ?? initialWeights(config, ["student", "ae"], settings.seed);
  await using step = await factory({
    config,
    teacher,
    params,
    seed: settings.seed,
    ...(ckpt ? { optimizer: ckpt.snapshot.optimizer } : {}),
    ...(ckpt?.snapshot.random !== undefined ? { random: ckpt.snapshot.random } : {}),
  });

  options.onStarted?.();
  const signal = options.signal ?? new AbortController().signal;
  let teacherNorm: TeacherNorm;
  if (ckpt?.teacherNorm) teacherNorm = ckpt.teacherNorm;
  else {
    log.info("computing the teacher's channel statistics", { images: images.length });
    try {
      teacherNorm = await computeTeacherNorm(step, images, { signal });
    } catch (e) {
      if (!signal.aborted) throw e;
      throw new InputError(
        "Cannot train: interrupted while computing the teacher's statistics, before the " +
          "first step (nothing to resume; start again)",
        { cause: e },
      );
    }
  }
  step.setTeacherNorm(teacherNorm);
  const record: Record<string, JsonScalar> = { ...settings };
  let lastLosses: StepLosses | undefined = ckpt?.losses;
  const checkpointOf = async (loop: TrainCheckpoint["loop"]): Promise<TrainCheckpoint> => ({
    config,
    seed: settings.seed,
    totalSteps: settings.steps,
    loop,
    teacher,
    snapshot: await step.snapshot(),
    teacherNorm,
    options: record,
    ...(lastLosses ? { losses: lastLosses } : {}),
  });
  const progress = new ProgressDisplay({
    log,
    ...(options.terminal !== undefined ? { terminal: options.terminal } : {}),
    ...(options.writer ? { writer: options.writer } : {}),
    ...(options.logEvery !== undefined ? { every: options.logEvery } : {}),
    ...(options.onProgress ? { onReport: options.onProgress } : {}),
  });
  const startStep = ckpt?.loop.step ?? 0;
  progress.start(startStep);
  log.info(ckpt ? "resuming training" : "training", {
    size: config.size,
    image_size: config.imageSize.join("x"),
    from_step: startStep,
    steps: settings.steps,
    seed: settings.seed,
    checkpoints: checkpointDir,
  });
  let final: TrainCheckpoint | undefined;
  const result = await runTraining(step, {
    totalSteps: settings.steps,
    images,
    seed: settings.seed,
    checkpointEvery: options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY,
    signal,
    ...(penalty ? { penalty } : {}),
    ...(ckpt ? { resume: ckpt.loop } : {}),
    onStep: (e) => {
      lastLosses = e.losses;
      progress.update(e);
    },
    onCheckpoint: async (loop, reason) => {
      const c = await checkpointOf(loop);
      await writeCheckpoint(checkpointDir, c);
      if (reason === "final") final = c;
      if (reason !== "periodic") progress.finish();
      log.debug("checkpoint written", { dir: checkpointDir, step: loop.step, reason });
    },
  });
  progress.finish();
  const base = {
    step: result.state.step,
    totalSteps: settings.steps,
    checkpointDir,
    ...(result.lastLosses ? { lastLosses: result.lastLosses } : {}),
  };
  if (result.interrupted || final === undefined) {
    log.warn("training stopped; the checkpoint can be resumed", {
      step: result.state.step,
      of: settings.steps,
      resume: `train --resume ${checkpointDir}`,
    });
    return { ...base, interrupted: true };
  }

  log.info("calibrating quantiles and threshold", { images: calibrationImages.length });
  let calibration;
  try {
    calibration = await calibrate(step, calibrationImages, { signal });
  } catch (e) {
    if (!signal.aborted) throw e;
    log.warn("interrupted while calibrating; the trained state is saved", {
      resume: `train --resume ${checkpointDir}`,
    });
    return { ...base, interrupted: true };
  }
  const notes = `data ${settings.data} (${data.layout}, ${data.train.length} training images, ` +
    `${data.calibration.length} calibration images from ${data.calibrationSource}); ` +
    `${settings.steps} steps; seed ${settings.seed}; teacher ${
      settings.teacher ?? "untrained random"
    }; penalty images ${settings.penalty ?? "none"}`;
  const model = await writeTrainedModel(settings.out, final, calibration, { notes });
  const onnx = buildEfficientAdGraph(model);
  await Deno.writeFile(join(settings.out, "model.onnx"), onnx);
  log.info("model written", {
    out: settings.out,
    version: model.provenance.version,
    threshold: calibration.thresholds.threshold,
    onnx: join(settings.out, "model.onnx"),
  });
  if (options.int8 === true) {
    log.info("calibrating the int8 graph", { images: calibrationImages.length });
    try {
      const frames: Tensor[] = [];
      for (let i = 0; i < calibrationImages.length; i++) {
        frames.push(await calibrationImages.get(i));
      }
      const int8 = await quantizeModelDir(settings.out, frames, { logger: log, signal });
      log.info("int8 graph written", {
        file: int8.path,
        threshold: int8.thresholds.threshold,
        seconds: Number(int8.calibration.seconds.toFixed(1)),
      });
    } catch (e) {
      if (signal.aborted) return { ...base, interrupted: true };
      log.warn("int8 graph not written: the fp32 model is complete", { reason: errorMessage(e) });
    }
  }
  return { ...base, interrupted: false, out: settings.out };
}
