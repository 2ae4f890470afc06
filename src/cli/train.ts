/**
 * The `train` command: teaches EfficientAD a product from normal images and writes a
 * project model directory (plus its ONNX graph), with periodic checkpoints that
 * `--resume` continues from exactly and a Ctrl-C that leaves a usable checkpoint.
 *
 * The numerical step is injected ({@linkcode TrainStepFactory}); this module is the
 * plumbing around it: flags, data, teacher, penalty images, schedule, checkpoints,
 * calibration and output.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { loadTeacher } from "../model/artifact.ts";
import { type EfficientAdConfig, type ModelSize, resolveConfig } from "../model/config.ts";
import type { StateDict } from "../model/state_dict.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { type CalibrationSource, findTrainingData, ImageSet } from "../train/data.ts";
import { PenaltyImages } from "../train/penalty.ts";
import {
  calibrate,
  type JsonScalar,
  readCheckpoint,
  type TrainCheckpoint,
  writeCheckpoint,
  writeTrainedModel,
} from "../train/checkpoint.ts";
import {
  computeTeacherNorm,
  initialWeights,
  runTraining,
  type StepLosses,
  type TeacherNorm,
  type TrainStepFactory,
} from "../train/loop.ts";
import { type ProgressWriter, TrainProgress } from "../train/progress.ts";
import { DEFAULT_TEACHER_DIR, resolveTeacherPath } from "../train/teacher_fetch.ts";

/** Usage lines of `train`, for the CLI's help text. */
export const TRAIN_USAGE = `  train --data <folder> --out <model dir> [options]
      --data <folder>       normal images: a folder of PNG/JPEG or an MVTec-style category (train/good)
      --out <dir>           where the project model (model.json, weights, model.onnx) is written
      --size s|m            EfficientAD size (default s, or the teacher's)
      --steps <n>           training steps (default 70000, anomalib's recipe)
      --image-size HxW      training image size (default 256x256)
      --teacher <path>      anomalib's pretrained teacher .pth, a folder from \`teacher fetch\`,
                            or a project model dir (default: an UNTRAINED random teacher)
      --penalty-images <folder>  natural images for the penalty loss (e.g. Imagenette)
      --seed <n>            seed of the initial weights, data order and augmentation (default 0)
      --engine onnx|tfjs    where the step runs: ONNX Runtime (default, ~2 s per S step on
                            2 cores) or TensorFlow.js (tfjs-node when it loads, else wasm)
      --calibration split|test-good  images for quantiles and threshold (default split)
      --holdout <fraction>  share of normal images held out with split (default 0.1)
      --checkpoint-every <n>  steps between checkpoints (default 500; always at the end)
      --checkpoint-dir <dir>  default <out>/checkpoint
      --resume <dir>        continue a run from its checkpoint directory
      --exit-with-parent    stop when standard input closes (the service starts its
                            trainings so, and they end if the service dies)
`;

/** Default number of steps: the paper's and anomalib's recipe. */
export const DEFAULT_STEPS = 70_000;
/** Default steps between checkpoints. */
export const DEFAULT_CHECKPOINT_EVERY = 500;

/** The flags of `train`, validated; settings left out are `undefined`. */
export interface TrainFlags {
  readonly data?: string;
  readonly out?: string;
  readonly size?: ModelSize;
  readonly steps?: number;
  readonly imageSize?: readonly [number, number];
  readonly teacher?: string;
  readonly penaltyImages?: string;
  readonly seed?: number;
  readonly calibration?: CalibrationSource;
  readonly holdout?: number;
  readonly checkpointEvery: number;
  readonly checkpointDir?: string;
  readonly resume?: string;
  /** Exit when standard input closes (the process that started the training is gone). */
  readonly exitWithParent?: boolean;
  /** The training engine: `onnx` (ONNX Runtime, default) or `tfjs`. */
  readonly engine: TrainEngine;
}

/** Where the training step runs. */
export type TrainEngine = "onnx" | "tfjs";

function positiveInt(flag: string, value: string, min = 1): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new InputError(
      `Cannot use --${flag} ${value}: expected an integer of at least ${min}`,
    );
  }
  return n;
}

/**
 * Parses and validates the flags of `train`.
 *
 * @throws {InputError} naming the flag on an unknown flag, a missing value, a stray
 * argument, or a value out of range; when `--data` / `--out` are missing without `--resume`.
 */
export function parseTrainArgs(args: readonly string[]): TrainFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        data: { type: "string" },
        out: { type: "string" },
        size: { type: "string" },
        steps: { type: "string" },
        "image-size": { type: "string" },
        teacher: { type: "string" },
        "penalty-images": { type: "string" },
        seed: { type: "string" },
        calibration: { type: "string" },
        holdout: { type: "string" },
        "checkpoint-every": { type: "string" },
        "checkpoint-dir": { type: "string" },
        resume: { type: "string" },
        engine: { type: "string" },
        "exit-with-parent": { type: "boolean" },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    throw new InputError(`Cannot parse train options: ${(e as Error).message}`, { cause: e });
  }
  let size: ModelSize | undefined;
  if (values.size !== undefined) {
    const s = values.size.toLowerCase();
    if (s !== "s" && s !== "m") {
      throw new InputError(`Cannot use --size ${values.size}: expected s or m`);
    }
    size = s;
  }
  let imageSize: [number, number] | undefined;
  if (values["image-size"] !== undefined) {
    const m = /^(\d+)(?:x(\d+))?$/.exec(values["image-size"]);
    if (!m) {
      throw new InputError(
        `Cannot use --image-size ${
          values["image-size"]
        }: expected HxW (e.g. 256x256) or one number`,
      );
    }
    imageSize = [Number(m[1]), Number(m[2] ?? m[1])];
    if (imageSize[0] < 256 || imageSize[1] < 256) {
      throw new InputError(
        `Cannot use --image-size ${
          values["image-size"]
        }: EfficientAD needs at least 256 pixels a side`,
      );
    }
  }
  let calibration: CalibrationSource | undefined;
  if (values.calibration !== undefined) {
    if (values.calibration !== "split" && values.calibration !== "test-good") {
      throw new InputError(
        `Cannot use --calibration ${values.calibration}: expected split or test-good`,
      );
    }
    calibration = values.calibration;
  }
  let holdout: number | undefined;
  if (values.holdout !== undefined) {
    holdout = Number(values.holdout);
    if (!(holdout > 0 && holdout < 1)) {
      throw new InputError(`Cannot use --holdout ${values.holdout}: expected a fraction in (0, 1)`);
    }
  }
  if (values.resume === undefined) {
    if (values.data === undefined) {
      throw new InputError("Cannot train: --data <folder of normal images> is required");
    }
    if (values.out === undefined) {
      throw new InputError("Cannot train: --out <model dir> is required");
    }
  }
  const engine = (values.engine ?? "onnx") as TrainEngine;
  if (engine !== "onnx" && engine !== "tfjs") {
    throw new InputError(`Cannot use --engine ${values.engine}: expected onnx or tfjs`);
  }
  const flags: TrainFlags = {
    engine,
    checkpointEvery: values["checkpoint-every"] === undefined
      ? DEFAULT_CHECKPOINT_EVERY
      : positiveInt("checkpoint-every", values["checkpoint-every"], 0),
    ...(values.data !== undefined ? { data: values.data } : {}),
    ...(values.out !== undefined ? { out: values.out } : {}),
    ...(size ? { size } : {}),
    ...(values.steps !== undefined ? { steps: positiveInt("steps", values.steps) } : {}),
    ...(imageSize ? { imageSize } : {}),
    ...(values.teacher !== undefined ? { teacher: values.teacher } : {}),
    ...(values["penalty-images"] !== undefined ? { penaltyImages: values["penalty-images"] } : {}),
    ...(values.seed !== undefined ? { seed: positiveInt("seed", values.seed, 0) } : {}),
    ...(calibration ? { calibration } : {}),
    ...(holdout !== undefined ? { holdout } : {}),
    ...(values["exit-with-parent"] === true ? { exitWithParent: true } : {}),
    ...(values["checkpoint-dir"] !== undefined ? { checkpointDir: values["checkpoint-dir"] } : {}),
    ...(values.resume !== undefined ? { resume: values.resume } : {}),
  };
  return flags;
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

function settingsRecord(s: RunSettings): Record<string, JsonScalar> {
  return { ...s };
}

function str(v: JsonScalar | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Merges the flags with a checkpoint's settings; a flag that contradicts it is an error. */
function resumeSettings(flags: TrainFlags, ckpt: TrainCheckpoint, dir: string): RunSettings {
  const o = ckpt.options;
  const saved: RunSettings = {
    data: str(o.data) ?? "",
    out: str(o.out) ?? "",
    steps: ckpt.totalSteps,
    seed: ckpt.seed,
    teacher: str(o.teacher) ?? null,
    penalty: str(o.penalty) ?? null,
    calibration: o.calibration === "test-good" ? "test-good" : "split",
    holdout: typeof o.holdout === "number" ? o.holdout : 0.1,
  };
  const clash = (flag: string, given: unknown, kept: unknown) => {
    if (given !== undefined && given !== kept) {
      throw new InputError(
        `Cannot resume from ${dir}: --${flag} ${String(given)} differs from the run's ${
          String(kept)
        } (a resumed run keeps its settings)`,
      );
    }
  };
  clash("steps", flags.steps, saved.steps);
  clash("seed", flags.seed, saved.seed);
  clash("size", flags.size, ckpt.config.size);
  clash("calibration", flags.calibration, saved.calibration);
  clash("holdout", flags.holdout, saved.holdout);
  if (flags.imageSize) {
    clash("image-size", flags.imageSize.join("x"), ckpt.config.imageSize.join("x"));
  }
  if (flags.data !== undefined) clash("data", resolve(flags.data), resolve(saved.data));
  return { ...saved, ...(flags.out !== undefined ? { out: flags.out } : {}) };
}

/** Options of {@linkcode trainCommand}. */
export interface TrainCommandOptions {
  /** The training step's backend. Default: TensorFlow.js ({@linkcode defaultStepFactory}). */
  readonly step?: TrainStepFactory;
  /** Stops training after the current step. Default: a SIGINT (Ctrl-C) handler. */
  readonly signal?: AbortSignal;
  /** Progress display: terminal bar or log lines (default: whether stdout is a terminal). */
  readonly terminal?: boolean;
  /** Where the progress bar goes. Default `Deno.stdout`. */
  readonly writer?: ProgressWriter;
  /** Log a progress line every this many steps when not on a terminal. Default 10. */
  readonly logEvery?: number;
}

/** What {@linkcode trainCommand} did. */
export interface TrainResult {
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

/** What the command says when it uses a random teacher. */
export const UNTRAINED_TEACHER_WARNING =
  "no --teacher given: training with an UNTRAINED (randomly initialised) teacher. anomalib's " +
  "pretrained teacher gives far better results: run `deno task cli teacher fetch` (it " +
  `downloads anomalib's efficientad_pretrained_weights.zip into ${DEFAULT_TEACHER_DIR}; offline, ` +
  "pass the zip with `teacher fetch --from <zip>`), then train with " +
  `--teacher ${DEFAULT_TEACHER_DIR}`;

function prefixed(dict: StateDict, prefix: string): StateDict {
  return new Map([...dict].map(([k, v]) => [`${prefix}${k}`, v]));
}

/**
 * The TensorFlow.js training step, loaded on first use (so other commands never load
 * TensorFlow.js).
 *
 * @throws {InputError} "training is not available" with the reason when it cannot load.
 */
export async function defaultStepFactory(engine: TrainEngine = "onnx"): Promise<TrainStepFactory> {
  if (engine === "onnx") {
    const { onnxTrainStepFactory } = await import("../train/onnx/train_step.ts");
    return onnxTrainStepFactory();
  }
  try {
    const { tfjsTrainStepFactory } = await import("../train/tfjs/train_step.ts");
    return tfjsTrainStepFactory();
  } catch (e) {
    throw new InputError(
      `Cannot train: training is not available in this build (the TensorFlow.js training ` +
        `step did not load: ${(e as Error).message}); the input checks passed`,
      { cause: e },
    );
  }
}

/**
 * `train`: see {@linkcode TRAIN_USAGE}.
 *
 * @throws {InputError} on bad flags, unusable data or penalty folders, a teacher of the
 * wrong size, a checkpoint that does not match, or when the training step cannot load;
 * `ModelFormatError` when the teacher cannot be read.
 */
/**
 * A training started by the service holds the read end of a pipe from it as standard input;
 * the pipe closes when the service exits, however it exits (even SIGKILL). Then nobody waits
 * for this training: stop at once instead of running on as an orphan.
 */
function exitWhenStdinCloses(log: Logger): void {
  void (async () => {
    try {
      for await (const _ of Deno.stdin.readable) {
        // the service never writes: only the end of the pipe matters
      }
    } catch {
      // a broken pipe is a closed pipe
    }
    log.warn("the process that started this training is gone (standard input closed): stopping");
    Deno.exit(3);
  })();
}

export async function trainCommand(
  args: string[],
  log: Logger,
  options: TrainCommandOptions = {},
): Promise<TrainResult> {
  const flags = parseTrainArgs(args);
  if (flags.exitWithParent === true) exitWhenStdinCloses(log);
  const ckpt = flags.resume !== undefined ? await readCheckpoint(flags.resume) : undefined;
  const settings: RunSettings = ckpt ? resumeSettings(flags, ckpt, flags.resume!) : {
    data: flags.data!,
    out: flags.out!,
    steps: flags.steps ?? DEFAULT_STEPS,
    seed: flags.seed ?? 0,
    teacher: flags.teacher ?? null,
    penalty: flags.penaltyImages ?? null,
    calibration: flags.calibration ?? "split",
    holdout: flags.holdout ?? 0.1,
  };
  if (ckpt && flags.teacher !== undefined) {
    log.warn("--teacher is ignored when resuming: the checkpoint holds the run's teacher");
  }

  // Teacher and architecture.
  let config: EfficientAdConfig;
  let teacher: StateDict;
  if (ckpt) {
    config = ckpt.config;
    teacher = ckpt.teacher;
  } else {
    let size: ModelSize = flags.size ?? "s";
    let outChannels = 384;
    if (settings.teacher !== null) {
      const path = await resolveTeacherPath(settings.teacher, size);
      const t = await loadTeacher(path);
      if (flags.size !== undefined && t.size !== flags.size) {
        throw new InputError(
          `Cannot train size ${flags.size.toUpperCase()} with teacher ${path}: it is a size ` +
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
      teacher = new Map();
    }
    try {
      config = resolveConfig({
        size,
        teacherOutChannels: outChannels,
        ...(flags.imageSize ? { imageSize: flags.imageSize } : {}),
      });
    } catch (e) {
      throw new InputError(`Cannot train: ${(e as Error).message}`, { cause: e });
    }
    if (teacher.size === 0) teacher = initialWeights(config, ["teacher"], settings.seed);
  }

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

  const factory = options.step ?? await defaultStepFactory(flags.engine);

  const checkpointDir = flags.checkpointDir ?? flags.resume ?? join(settings.out, "checkpoint");
  const params = ckpt?.snapshot.params ?? initialWeights(config, ["student", "ae"], settings.seed);
  await using step = await factory({
    config,
    teacher,
    params,
    seed: settings.seed,
    ...(ckpt ? { optimizer: ckpt.snapshot.optimizer } : {}),
    ...(ckpt?.snapshot.random !== undefined ? { random: ckpt.snapshot.random } : {}),
  });

  // Ctrl-C: stop after the current step and leave a checkpoint.
  const controller = new AbortController();
  let onSigint: (() => void) | undefined;
  if (options.signal === undefined) {
    onSigint = () => {
      if (controller.signal.aborted) Deno.exit(130);
      log.warn("interrupt: stopping after the current step (Ctrl-C again to quit at once)");
      controller.abort();
    };
    Deno.addSignalListener("SIGINT", onSigint);
  }
  const signal = options.signal ?? controller.signal;
  try {
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
    const record = settingsRecord(settings);
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
    const progress = new TrainProgress({
      log,
      ...(options.terminal !== undefined ? { terminal: options.terminal } : {}),
      ...(options.writer ? { writer: options.writer } : {}),
      ...(options.logEvery !== undefined ? { every: options.logEvery } : {}),
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
      checkpointEvery: flags.checkpointEvery,
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
    return { ...base, interrupted: false, out: settings.out };
  } finally {
    if (onSigint) Deno.removeSignalListener("SIGINT", onSigint);
  }
}
