/**
 * The `train` command: parses its flags and calls {@linkcode trainModel} (see
 * `src/train/train_model.ts`), with a Ctrl-C that leaves a usable checkpoint. With
 * `--progress-json` it also writes the run's events as JSON lines on standard output
 * ({@linkcode TrainEvent}: the retraining service starts it so and reads them back).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULTS } from "../config/defaults.ts";
import { assertNonNegativeInteger, assertPositiveInteger } from "../core/check.ts";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { imageSizeFlag, providersFlag, sizeFlag } from "./args.ts";
import type { CalibrationSource } from "../train/data.ts";
import type { TrainStepFactory } from "../train/loop.ts";
import type { ProgressWriter } from "../train/progress_display.ts";
import { type TrainEvent, trainEventLine } from "../train/progress_event.ts";
import {
  DEFAULT_CHECKPOINT_EVERY,
  type TrainEngine,
  trainModel,
  type TrainOutcome,
  type TrainSettings,
} from "../train/train_model.ts";

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
      --providers <list>    with --engine onnx: execution providers in order, e.g. webgpu,cpu
                            (webgpu: the GPU through Deno's WebGPU; default cpu)
      --calibration split|test-good  images for quantiles and threshold (default split)
      --holdout <fraction>  share of normal images held out with split (default 0.1)
      --checkpoint-every <n>  steps between checkpoints (default 500; always at the end)
      --checkpoint-dir <dir>  default <out>/checkpoint
      --resume <dir>        continue a run from its checkpoint directory
      --exit-with-parent    stop when standard input closes (the service starts its
                            trainings so, and they end if the service dies)
      --progress-json       also write progress, the end or the error as JSON lines on
                            standard output (for the service; the bar is off)
      --int8                also write the int8 graph, calibrated on the calibration images
                            (as quantize does; a failure leaves the fp32 model, with a warning)
`;

/** The flags of `train`, validated; settings left out are `undefined`. */
export interface TrainFlags extends TrainSettings {
  readonly checkpointEvery: number;
  /** The training engine: `onnx` (ONNX Runtime, default) or `tfjs`. */
  readonly engine: TrainEngine;
  /** Exit when standard input closes (the process that started the training is gone). */
  readonly exitWithParent?: boolean;
  /** Write the run's events as JSON lines on standard output. */
  readonly progressJson?: boolean;
  /** Also write the int8 graph (`--int8`). */
  readonly int8?: boolean;
}

/** An integer flag of at least `min` (0 or 1); decimal digits only. */
function integerFlag(flag: string, value: string, min: 0 | 1): number {
  const n = Number(value);
  // Hexadecimal or exponent notation reads as an integer to Number(): refuse it too.
  const checked = /^\s*\d+\s*$/.test(value) || !Number.isInteger(n) ? n : NaN;
  const action = `Cannot use --${flag} ${value}`;
  try {
    return min === 1
      ? assertPositiveInteger(checked, `--${flag}`, action)
      : assertNonNegativeInteger(checked, `--${flag}`, action);
  } catch (e) {
    throw new InputError(errorMessage(e), { cause: e });
  }
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
        providers: { type: "string" },
        "exit-with-parent": { type: "boolean" },
        "progress-json": { type: "boolean" },
        int8: { type: "boolean" },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    throw new InputError(`Cannot parse train options: ${errorMessage(e)}`, { cause: e });
  }
  const size = values.size !== undefined ? sizeFlag(values.size) : undefined;
  let imageSize: [number, number] | undefined;
  if (values["image-size"] !== undefined) {
    imageSize = imageSizeFlag(values["image-size"]);
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
  const engine = (values.engine ?? DEFAULTS.retrain.training.engine) as TrainEngine;
  if (engine !== "onnx" && engine !== "tfjs") {
    throw new InputError(`Cannot use --engine ${values.engine}: expected onnx or tfjs`);
  }
  if (values.providers !== undefined && engine !== "onnx") {
    throw new InputError(`Cannot use --providers with --engine ${engine}: it is for onnx`);
  }
  const flags: TrainFlags = {
    engine,
    ...(values.providers !== undefined
      ? { executionProviders: providersFlag(values.providers) }
      : {}),
    checkpointEvery: values["checkpoint-every"] === undefined
      ? DEFAULT_CHECKPOINT_EVERY
      : integerFlag("checkpoint-every", values["checkpoint-every"], 0),
    ...(values.data !== undefined ? { data: values.data } : {}),
    ...(values.out !== undefined ? { out: values.out } : {}),
    ...(size ? { size } : {}),
    ...(values.steps !== undefined ? { steps: integerFlag("steps", values.steps, 1) } : {}),
    ...(imageSize ? { imageSize } : {}),
    ...(values.teacher !== undefined ? { teacher: values.teacher } : {}),
    ...(values["penalty-images"] !== undefined ? { penaltyImages: values["penalty-images"] } : {}),
    ...(values.seed !== undefined ? { seed: integerFlag("seed", values.seed, 0) } : {}),
    ...(calibration ? { calibration } : {}),
    ...(holdout !== undefined ? { holdout } : {}),
    ...(values["exit-with-parent"] === true ? { exitWithParent: true } : {}),
    ...(values["progress-json"] === true ? { progressJson: true } : {}),
    ...(values.int8 === true ? { int8: true } : {}),
    ...(values["checkpoint-dir"] !== undefined ? { checkpointDir: values["checkpoint-dir"] } : {}),
    ...(values.resume !== undefined ? { resume: values.resume } : {}),
  };
  return flags;
}

/** Options of {@linkcode trainCommand}. */
export interface TrainCommandOptions {
  /** The training step's backend. Default: the `--engine`'s (ONNX Runtime unless `tfjs`). */
  readonly step?: TrainStepFactory;
  /** Stops training after the current step. Default: a SIGINT (Ctrl-C) handler. */
  readonly signal?: AbortSignal;
  /** Progress display: terminal bar or log lines (default: whether stdout is a terminal). */
  readonly terminal?: boolean;
  /** Where the progress bar goes. Default `Deno.stdout`. */
  readonly writer?: ProgressWriter;
  /** Where the `--progress-json` lines go. Default `Deno.stdout`. */
  readonly events?: ProgressWriter;
  /** Log a progress line every this many steps when not on a terminal. Default 10. */
  readonly logEvery?: number;
}

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

const encoder = new TextEncoder();

/** Writes all of `bytes` (a pipe may take fewer at a time). */
function writeAll(writer: ProgressWriter, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writer.writeSync(bytes.subarray(done));
}

/**
 * `train`: see {@linkcode TRAIN_USAGE}.
 *
 * @throws {InputError} on bad flags, and as {@linkcode trainModel}; with `--progress-json`
 * an `error` line is written first.
 */
export async function trainCommand(
  args: string[],
  log: Logger,
  options: TrainCommandOptions = {},
): Promise<TrainOutcome> {
  const flags = parseTrainArgs(args);
  if (flags.exitWithParent === true) exitWhenStdinCloses(log);
  const { exitWithParent: _exit, progressJson, int8, ...settings } = flags;
  const events = options.events ?? Deno.stdout;
  const emit = progressJson === true
    ? (e: TrainEvent) => writeAll(events, encoder.encode(trainEventLine(e) + "\n"))
    : undefined;

  // Ctrl-C: stop after the current step and leave a checkpoint; before the step is built
  // (data, teacher), and the second time, quit at once.
  const controller = new AbortController();
  let started = false;
  let onSigint: (() => void) | undefined;
  if (options.signal === undefined) {
    onSigint = () => {
      if (!started || controller.signal.aborted) Deno.exit(130);
      log.warn("interrupt: stopping after the current step (Ctrl-C again to quit at once)");
      controller.abort();
    };
    Deno.addSignalListener("SIGINT", onSigint);
  }
  try {
    const terminal = emit ? false : options.terminal;
    const outcome = await trainModel({
      ...settings,
      log,
      signal: options.signal ?? controller.signal,
      ...(options.step ? { step: options.step } : {}),
      ...(terminal !== undefined ? { terminal } : {}),
      ...(options.writer ? { writer: options.writer } : {}),
      ...(options.logEvery !== undefined ? { logEvery: options.logEvery } : {}),
      ...(emit ? { onProgress: (p) => emit({ type: "progress", ...p }) } : {}),
      onStarted: () => (started = true),
      ...(int8 === true ? { int8: true } : {}),
    });
    emit?.({
      type: "done",
      step: outcome.step,
      total: outcome.totalSteps,
      interrupted: outcome.interrupted,
      checkpointDir: outcome.checkpointDir,
      ...(outcome.out !== undefined ? { out: outcome.out } : {}),
    });
    return outcome;
  } catch (e) {
    emit?.({ type: "error", message: errorMessage(e) });
    throw e;
  } finally {
    if (onSigint) Deno.removeSignalListener("SIGINT", onSigint);
  }
}
