/**
 * `eval`: scores a model on an MVTec-style category and reports image AUROC, pixel AUROC,
 * AU-PRO (up to 30 % FPR), F1-max and its threshold, as JSON and as an HTML report.
 *
 * ```sh
 * deno task cli eval --model models/bottle --data ../shared/datasets/mvtec_ad_256/bottle \
 *   --json out/eval.json --report out/eval.html
 * ```
 *
 * @module
 */
import type { Precision } from "../core/frame.ts";
import { parseArgs } from "node:util";
import { dirname, relative } from "node:path";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { encodePng } from "../image/decode.ts";
import { heatmapPng } from "../image/heatmap.ts";
import { createEngine } from "../infer/create.ts";
import { readCategory } from "../eval/dataset.ts";
import { type EvalMetrics, evaluate, type Evaluation } from "../eval/evaluate.ts";
import { thinCurve } from "../eval/metrics.ts";
import { renderReport, type ReportRow } from "../eval/report.ts";
import { engineOptionsFrom, MODEL_FLAGS, openArtifact, positiveIntegerFlag } from "./args.ts";

/** Usage lines of `eval`, for the CLI's help text. */
export const EVAL_USAGE =
  `  eval --data <category dir> [--model <path>] [--json <file>] [--report <file.html>]
      --data <dir>          an MVTec-style category: test/good, test/<defect>,
                            ground_truth/<defect>/<name>_mask.png
      --json <file>         write the metrics JSON there instead of stdout
      --report <file.html>  write a self-contained HTML report (ROC curves, heatmaps)
      --batch <n>           images per run (default 8)
      (and the model flags of predict: --model, --engine, --providers, --threads,
       --precision fp32|int8|fp16, ...)
`;

/** The JSON `eval` prints: the metrics plus what was evaluated and how long it took. */
export interface EvalSummary extends EvalMetrics {
  readonly counts: Evaluation["counts"];
  readonly score_kind: "raw" | "normalized";
  /** Connectivity of the ground-truth regions of AU-PRO. */
  readonly region_connectivity: 8;
  readonly model: string;
  readonly model_version?: string;
  readonly engine: string;
  /** The graph's precision (`--precision`; `fp32` when int8 / fp16 fell back). */
  readonly model_precision: Precision;
  readonly data: string;
  readonly category: string;
  readonly input_size: readonly [number, number];
  readonly map_size: readonly [number, number];
  readonly timing: {
    readonly load_ms: number;
    readonly read_ms: number;
    readonly inference_ms: number;
    readonly ms_per_image: number;
    readonly metrics_ms: number;
    readonly total_ms: number;
  };
}

async function writeText(path: string, text: string): Promise<void> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, text);
  } catch (e) {
    throw new InputError(`Cannot write ${path}: ${errorMessage(e)}`, { cause: e });
  }
}

/**
 * The HTML report of an evaluation: metrics, image and pixel ROC curves, the PRO curve,
 * and per test image the input, its mask and its heatmap (jet, one colour scale for all
 * maps: the smallest to the largest value of any map).
 */
export function buildReport(result: Evaluation, summary: EvalSummary): string {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of result.images) {
    for (const v of s.map) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!(hi > lo)) hi = lo + 1;
  const [h, w] = result.mapSize;
  const rows: ReportRow[] = result.images.map((s) => {
    const mask = new Uint8Array(h * w * 3);
    for (let p = 0; p < h * w; p++) mask.fill(s.mask[p]! ? 255 : 0, p * 3, p * 3 + 3);
    const map = { shape: [h, w], data: s.map };
    return {
      name: relative(summary.data, s.sample.path),
      defect: s.sample.defect,
      score: s.score,
      flagged: s.score >= summary.threshold,
      image: s.image ? encodePng(s.image) : encodePng({ width: w, height: h, data: mask }),
      mask: encodePng({ width: w, height: h, data: mask }),
      heatmap: heatmapPng(map, {
        min: lo,
        max: hi,
        alpha: 0.5,
        ...(s.image ? { background: s.image } : {}),
      }),
    };
  });
  const curve = (c: Evaluation["imageRoc"]) => {
    const t = thinCurve(c, 500);
    return { x: t.fpr, y: t.tpr };
  };
  return renderReport({
    title: `EfficientAD evaluation: ${summary.category}`,
    summary: {
      model: summary.model,
      engine: summary.engine,
      data: summary.data,
      "image AUROC": summary.image_auroc,
      "pixel AUROC": summary.pixel_auroc,
      [`AU-PRO (FPR <= ${summary.aupro_fpr_limit})`]: summary.aupro,
      "F1-max (image)": summary.f1_max,
      [`threshold (${summary.score_kind} score)`]: summary.threshold,
      "images (normal / anomalous)": `${summary.counts.normal} / ${summary.counts.anomalous}`,
      "inference per image": `${summary.timing.ms_per_image} ms`,
    },
    plots: [
      {
        title: `Image ROC (AUROC ${summary.image_auroc.toFixed(4)})`,
        xLabel: "false-positive rate",
        yLabel: "true-positive rate",
        curve: curve(result.imageRoc),
        diagonal: true,
      },
      {
        title: `Pixel ROC (AUROC ${summary.pixel_auroc.toFixed(4)})`,
        xLabel: "false-positive rate",
        yLabel: "true-positive rate",
        curve: curve(result.pixelRoc),
        diagonal: true,
      },
      {
        title: `PRO (AU-PRO ${summary.aupro.toFixed(4)})`,
        xLabel: "false-positive rate (normal pixels)",
        yLabel: "per-region overlap",
        curve: curve(result.proCurve),
        xMax: summary.aupro_fpr_limit,
      },
    ],
    rows,
    note: `Heatmaps: jet over the input, one scale for all images from ${lo.toPrecision(4)} ` +
      `(blue) to ${hi.toPrecision(4)} (red). Flagged: image score >= the F1-max threshold ` +
      `${summary.threshold.toPrecision(5)}.`,
  });
}

/**
 * `eval`: see {@linkcode EVAL_USAGE}. Prints the metrics JSON on stdout unless `--json`.
 *
 * @throws {InputError} on bad flags, an unreadable dataset or unwritable outputs.
 * @throws {ModelFormatError} when the model cannot be loaded.
 */
export async function evalCommand(args: string[], log: Logger): Promise<void> {
  const start = performance.now();
  const { values } = parseArgs({
    args,
    options: {
      ...MODEL_FLAGS,
      data: { type: "string" },
      json: { type: "string" },
      report: { type: "string" },
      batch: { type: "string" },
    },
    strict: true,
  });
  if (values.data === undefined) {
    throw new InputError("Cannot evaluate: --data <MVTec-style category folder> is required");
  }
  const batchSize = values.batch !== undefined ? positiveIntegerFlag("batch", values.batch) : 8;
  const engineOptions = engineOptionsFrom(values);
  const category = await readCategory(values.data);
  const artifact = await openArtifact(values, log);
  await using engine = await createEngine(artifact, { ...engineOptions, logger: log });
  const loadMs = performance.now() - start;
  log.info("evaluating", {
    model: artifact.path,
    engine: engine.description,
    model_precision: engine.precision ?? "fp32",
    data: values.data,
    images: category.test.length,
  });
  const result = await evaluate(engine, category, {
    batchSize,
    keepImages: values.report !== undefined,
    logger: log,
  });
  const { metrics } = result;
  const summary: EvalSummary = {
    image_auroc: metrics.image_auroc,
    pixel_auroc: metrics.pixel_auroc,
    aupro: metrics.aupro,
    aupro_fpr_limit: metrics.aupro_fpr_limit,
    f1_max: metrics.f1_max,
    threshold: metrics.threshold,
    precision: metrics.precision,
    recall: metrics.recall,
    per_defect: metrics.per_defect,
    counts: result.counts,
    score_kind: engine.scoreKind,
    region_connectivity: 8,
    model: artifact.path,
    ...(artifact.kind === "efficientad"
      ? { model_version: artifact.model.provenance.version }
      : {}),
    engine: engine.description,
    model_precision: engine.precision ?? "fp32",
    data: values.data,
    category: category.name,
    input_size: engine.inputSize,
    map_size: result.mapSize,
    timing: {
      load_ms: Math.round(loadMs),
      read_ms: result.timing.read_ms,
      inference_ms: result.timing.inference_ms,
      ms_per_image: Math.round(result.timing.inference_ms / result.images.length * 10) / 10,
      metrics_ms: result.timing.metrics_ms,
      total_ms: Math.round(performance.now() - start),
    },
  };
  if (values.report !== undefined) {
    await writeText(values.report, buildReport(result, summary));
    log.info("wrote report", { report: values.report, images: result.images.length });
  }
  const json = JSON.stringify(summary, null, 2) + "\n";
  if (values.json !== undefined) {
    await writeText(values.json, json);
    log.info("wrote metrics", { json: values.json });
  } else {
    await Deno.stdout.write(new TextEncoder().encode(json));
  }
  log.info("evaluated", {
    image_auroc: +summary.image_auroc.toFixed(4),
    pixel_auroc: +summary.pixel_auroc.toFixed(4),
    aupro: +summary.aupro.toFixed(4),
    f1_max: +summary.f1_max.toFixed(4),
    threshold: summary.threshold,
  });
}
