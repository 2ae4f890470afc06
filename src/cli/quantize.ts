/**
 * `quantize`: adds an int8 graph to a model directory, calibrated on normal images, and
 * says what it changed (the int8 graph's own threshold beside the fp32 one). For a model
 * that is not a project directory (anomalib's `.pth`), `--out` names the directory to
 * write (weights, `model.json` and the int8 graph).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Tensor } from "../core/tensor.ts";
import type { CalibrationMethod, Int8Graph } from "../model/model.ts";
import { isProjectModelDir, readProjectModel, writeProjectModel } from "../model/project_format.ts";
import { listImages } from "../image/list.ts";
import { loadImageTensor } from "../train/data.ts";
import { DEFAULT_METHOD, DEFAULT_PERCENTILE } from "../quantize/quantize_model.ts";
import { quantizeModelDir } from "../quantize/quantize_dir.ts";
import { MODEL_FLAGS, openArtifact, positiveIntegerFlag } from "./args.ts";

/** Default most calibration images `quantize` reads (spread over the folder). */
export const DEFAULT_QUANTIZE_FRAMES = 64;

/** Usage lines of `quantize` (and of `export --precision int8`). */
export const QUANTIZE_USAGE = `  quantize --model <dir> --data <folder of normal images> [options]
                            write the model's int8 graph into its directory, calibrated on
                            the images, with its own quantiles and threshold
      --method minmax|percentile|entropy
                            how activation ranges are chosen (default ${DEFAULT_METHOD})
      --percentile <p>      the percentile of --method percentile (default ${DEFAULT_PERCENTILE})
      --frames <n>          at most this many images, spread over the folder (default ${DEFAULT_QUANTIZE_FRAMES})
      --out <dir>           for a model that is not a project directory (.pth): write one there
      (and --threads and the architecture flags of predict)
`;

const METHODS: readonly CalibrationMethod[] = ["minmax", "percentile", "entropy"];

/** The `parseArgs` options of the calibration flags (`quantize`, `export`). */
export const CALIBRATION_FLAGS = {
  data: { type: "string" },
  method: { type: "string" },
  percentile: { type: "string" },
  frames: { type: "string" },
} as const;

/** Parsed values of {@linkcode CALIBRATION_FLAGS}. */
export interface CalibrationFlagValues {
  data?: string | undefined;
  method?: string | undefined;
  percentile?: string | undefined;
  frames?: string | undefined;
  threads?: string | undefined;
}

/** `count` paths spread evenly over `paths` (all of them when there are fewer). */
export function spreadSample(paths: readonly string[], count: number): string[] {
  if (paths.length <= count) return [...paths];
  return Array.from({ length: count }, (_, i) => paths[Math.floor(i * paths.length / count)]!);
}

/**
 * Calibrates and writes the int8 graph of the project model in `dir` from the
 * calibration flags (`--data` required).
 *
 * @throws {InputError} on bad flags or an image folder without images.
 * @throws as `quantizeModelDir`.
 */
export async function quantizeFromFlags(
  dir: string,
  flags: CalibrationFlagValues,
  log: Logger,
): Promise<Int8Graph> {
  if (flags.data === undefined) {
    throw new InputError(`Cannot quantize ${dir}: --data <folder of normal images> is required`);
  }
  const method = (flags.method ?? DEFAULT_METHOD) as CalibrationMethod;
  if (!METHODS.includes(method)) {
    throw new InputError(
      `Cannot use --method ${flags.method}: expected minmax, percentile or entropy`,
    );
  }
  let percentile: number | undefined;
  if (flags.percentile !== undefined) {
    percentile = Number(flags.percentile);
    if (!(percentile > 50 && percentile <= 100)) {
      throw new InputError(
        `Cannot use --percentile ${flags.percentile}: expected a number above 50, at most 100`,
      );
    }
    if (method !== "percentile") {
      throw new InputError("Cannot use --percentile without --method percentile");
    }
  }
  const count = flags.frames !== undefined
    ? positiveIntegerFlag("frames", flags.frames)
    : DEFAULT_QUANTIZE_FRAMES;
  const threads = flags.threads !== undefined
    ? positiveIntegerFlag("threads", flags.threads)
    : undefined;
  const all = await listImages(flags.data);
  if (all.length === 0) {
    throw new InputError(`Cannot quantize ${dir}: no PNG or JPEG images in ${flags.data}`);
  }
  const model = await readProjectModel(dir);
  const paths = spreadSample(all, count);
  const frames: Tensor[] = [];
  for (const p of paths) frames.push(await loadImageTensor(p, model.config.imageSize));
  const int8 = await quantizeModelDir(dir, frames, {
    method,
    ...(percentile !== undefined ? { percentile } : {}),
    ...(threads !== undefined ? { intraOpThreads: threads } : {}),
    logger: log,
  });
  log.info("wrote int8 graph", {
    model: dir,
    file: int8.path,
    frames: int8.calibration.frames,
    method: int8.calibration.method,
    seconds: Number(int8.calibration.seconds.toFixed(1)),
    threshold_int8: int8.thresholds.threshold,
    ...(model.thresholds ? { threshold_fp32: model.thresholds.threshold } : {}),
  });
  return int8;
}

/**
 * `quantize`: see {@linkcode QUANTIZE_USAGE}.
 *
 * @throws {InputError} on bad flags; {@linkcode ModelFormatError} when the model cannot be
 * loaded.
 */
export async function quantizeCommand(args: string[], log: Logger): Promise<Int8Graph> {
  const { values } = parseArgs({
    args,
    options: { ...MODEL_FLAGS, ...CALIBRATION_FLAGS, out: { type: "string" } },
    strict: true,
  });
  if (values.model === undefined) {
    throw new InputError("Cannot quantize: --model <model directory> is required");
  }
  let dir = values.model;
  if (!(await isProjectModelDir(dir))) {
    if (values.out === undefined) {
      throw new InputError(
        `Cannot quantize ${dir}: int8 graphs live in a project model directory; pass ` +
          "--out <dir> to write one from this model",
      );
    }
    const artifact = await openArtifact(values, log);
    if (artifact.kind !== "efficientad") {
      throw new InputError(
        `Cannot quantize ${dir}: an anomalib ONNX export is served as it is (quantize the ` +
          ".pth it came from)",
      );
    }
    await writeProjectModel(values.out, artifact.model);
    dir = values.out;
  } else if (values.out !== undefined && values.out !== dir) {
    throw new InputError(
      `Cannot use --out with the project model directory ${dir}: its int8 graph is written into it`,
    );
  }
  return await quantizeFromFlags(dir, values, log);
}
