/**
 * The command-line commands of `main.ts`: `predict`, `export`, `demo`, `help`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { errorMessage, InputError } from "../core/errors.ts";
import { ConfigError } from "../config/mod.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { createEngine } from "../infer/create.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { servedThresholds } from "../model/thresholds.ts";
import {
  engineOptionsFrom,
  MODEL_FLAGS,
  openArtifact,
  positiveIntegerFlag,
  precisionFlag,
} from "./args.ts";
import {
  CALIBRATION_FLAGS,
  type CalibrationFlagValues,
  QUANTIZE_USAGE,
  quantizeCommand,
  quantizeFromFlags,
} from "./quantize.ts";
import { isProjectModelDir, readInt8Graph, readProjectModel } from "../model/project_format.ts";
import { predictFiles } from "./predict.ts";
import { validateCommand } from "./validate.ts";
import { EVAL_USAGE, evalCommand } from "./eval.ts";
import { TRAIN_USAGE, trainCommand } from "./train.ts";
import { TEACHER_USAGE, teacherCommand } from "./teacher.ts";
import { runCommand } from "./run.ts";

/** The project root (where `assets/` lives). */
export const ROOT = join(dirname(fromFileUrl(import.meta.url)), "..", "..");

/** Text of `help`. */
export const USAGE = `Usage: deno task cli <command> [options]

Commands:
  run <pipeline.yaml>       the service: cameras -> EfficientAD -> MQTT (+ HTTP status)
  demo                      predict on the bundled demo images with a built-in model
  predict [options] <inputs...>
      --model <path>        project model dir, anomalib .pth/.ckpt state dict, or anomalib .onnx
      --engine onnx|tfjs    inference engine (default onnx)
      --providers <list>    ONNX execution providers in order, e.g. tensorrt,cuda,cpu (default cpu)
      --threads <n>         ONNX Runtime intra-op threads (default: all cores)
      --precision fp32|int8|fp16
                            int8: the model dir's int8 graph (see quantize), with its own
                            thresholds; fp16: the half-precision graph on WebGPU (default fp32)
      --size s|m            model size, for a bare state dict (checked against the weights)
      --padding             the model was trained with padding: true
      --no-pad-maps         the model was trained with pad_maps: false
      --image-size HxW      the model's input size (default 256x256)
      --batch <n>           images per run (default 8)
      --out <dir>           output folder (default out/predict)
      inputs: PNG / JPEG images or .npy float32 N x 3 x H x W in [0, 1]
  export --model <path> --out <file.onnx> [--debug] [--precision int8 [--data <folder>]]
                            write the project's inference graph as an ONNX file; with
                            --precision int8 the model dir's int8 graph, calibrated first on
                            --data (written into the model dir, as quantize does) when given
${QUANTIZE_USAGE}${TRAIN_USAGE}${TEACHER_USAGE}${EVAL_USAGE}  validate <pipeline.yaml> [--json]
                            check a pipeline file and print it resolved (secrets hidden)
  help                      this text
`;

/** `predict`: see {@linkcode USAGE}. */
export async function predictCommand(args: string[], log: Logger): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...MODEL_FLAGS, out: { type: "string" }, batch: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0) throw new InputError("Cannot predict: no input files given");
  const batch = values.batch !== undefined ? positiveIntegerFlag("batch", values.batch) : 8;
  const outDir = values.out ?? "out/predict";
  const artifact = await openArtifact(values, log);
  await using engine = await createEngine(artifact, { ...engineOptionsFrom(values), logger: log });
  log.info("model loaded", { model: artifact.path, engine: engine.description });
  const thresholds = artifact.kind === "efficientad"
    ? servedThresholds(artifact.model, engine.precision)
    : undefined;
  const results = await predictFiles(engine, positionals, {
    outDir,
    batchSize: batch,
    logger: log,
    ...(thresholds ? { thresholds } : {}),
  });
  const summary = {
    model: artifact.path,
    ...(artifact.kind === "efficientad"
      ? {
        model_version: artifact.model.provenance.version,
        model_source: artifact.model.provenance.source,
      }
      : {}),
    engine: engine.description,
    model_precision: engine.precision ?? "fp32",
    input_size: engine.inputSize,
    results,
  };
  await Deno.writeTextFile(join(outDir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  for (const r of results) {
    console.log(
      `${r.input}\tscore=${r.pred_score.toFixed(5)} (${r.score_kind})` +
        (r.anomalous !== undefined ? `\tanomalous=${r.anomalous}` : ""),
    );
  }
  log.info("wrote results", {
    out: outDir,
    files: "anomaly_map.npy pred_score.npy summary.json *_heatmap.png",
  });
}

/** `export`: see {@linkcode USAGE}. */
export async function exportCommand(args: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ...MODEL_FLAGS,
      ...CALIBRATION_FLAGS,
      out: { type: "string" },
      debug: { type: "boolean" },
    },
    strict: true,
  });
  const precision = values.precision !== undefined ? precisionFlag(values.precision) : "fp32";
  if (precision === "int8") return await exportInt8(values, log);
  if (values.data !== undefined) {
    throw new InputError("Cannot use --data without --precision int8: only int8 is calibrated");
  }
  if (values.out === undefined) {
    throw new InputError("Cannot export: --out <file.onnx> is required");
  }
  const artifact = await openArtifact(values, log);
  if (artifact.kind !== "efficientad") {
    throw new InputError(`Cannot export ${artifact.path}: it is an ONNX file already`);
  }
  const bytes = buildEfficientAdGraph(artifact.model, {
    debug: values.debug ?? false,
    ...(precision === "fp16" ? { precision } : {}),
  });
  await Deno.writeFile(values.out, bytes);
  log.info("wrote ONNX graph", { out: values.out, bytes: bytes.length, opset: 18 });
}

/**
 * `export --precision int8`: calibrates the model dir's int8 graph when `--data` is given
 * (written into the dir), then copies it to `--out` when given.
 */
async function exportInt8(
  values: CalibrationFlagValues & { model?: string | undefined; out?: string | undefined },
  log: Logger,
): Promise<void> {
  const dir = values.model;
  if (dir === undefined || !(await isProjectModelDir(dir))) {
    throw new InputError(
      `Cannot export int8${dir ? ` of ${dir}` : ""}: --model must be a project model ` +
        "directory (int8 graphs live there; `quantize --model <.pth> --out <dir>` makes one)",
    );
  }
  const int8 = values.data !== undefined
    ? await quantizeFromFlags(dir, values, log)
    : (await readProjectModel(dir)).int8;
  if (int8 === undefined) {
    throw new InputError(
      `Cannot export int8 of ${dir}: it has no int8 graph; pass --data <folder of normal ` +
        "images> to calibrate one",
    );
  }
  if (values.out === undefined) return;
  const bytes = await readInt8Graph(int8);
  await Deno.writeFile(values.out, bytes);
  log.info("wrote int8 ONNX graph", { out: values.out, bytes: bytes.length });
}

/** `demo`: the main job on its embedded default. */
export async function demoCommand(args: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({ args, options: { out: { type: "string" } }, strict: true });
  const dir = join(ROOT, "assets", "demo");
  const inputs = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".png"))
    .map((e) => join(dir, e.name)).sort();
  log.info("demo: scoring the bundled images in assets/demo with the built-in model", {
    images: inputs.length,
  });
  await predictCommand(["--out", values.out ?? "out/demo", ...inputs], log);
}

/** Runs a command line; returns the process exit code. */
export async function runCli(argv: string[], log: Logger = createLogger()): Promise<number> {
  const [command = "help", ...rest] = argv;
  try {
    switch (command) {
      case "predict":
        await predictCommand(rest, log);
        return 0;
      case "export":
        await exportCommand(rest, log);
        return 0;
      case "quantize":
        await quantizeCommand(rest, log);
        return 0;
      case "demo":
        await demoCommand(rest, log);
        return 0;
      case "run":
        await runCommand(rest, log);
        return 0;
      case "train": {
        const result = await trainCommand(rest, log);
        return result.interrupted ? 130 : 0;
      }
      case "teacher":
        await teacherCommand(rest, log);
        return 0;
      case "eval":
        await evalCommand(rest, log);
        return 0;
      case "validate":
        await validateCommand(rest, log);
        return 0;
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return 0;
      default:
        log.error(`unknown command "${command}"`);
        console.error(USAGE);
        return 2;
    }
  } catch (e) {
    log.error(errorMessage(e));
    return e instanceof ConfigError ? 2 : 1;
  }
}
