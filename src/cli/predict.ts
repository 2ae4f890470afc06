/**
 * `predict`: runs a model on image files (PNG, JPEG) or `.npy` batches and writes
 * `anomaly_map.npy`, `pred_score.npy`, `summary.json` and one heatmap PNG per input.
 *
 * @module
 */
import { basename, extname, join } from "node:path";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { readNpy, writeNpy } from "../core/npy.ts";
import { item, stack, type Tensor } from "../core/tensor.ts";
import { heatmapPng } from "../image/heatmap.ts";
import { imageToTensor, readImage, type RgbImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import type { Thresholds } from "../model/model.ts";
import { normalizeScore } from "../model/thresholds.ts";

/** One image to score, already at the engine's input size. */
export interface PredictInput {
  /** The file it came from, with `#k` for the k-th image of a `.npy` batch. */
  readonly name: string;
  /** 3 x H x W in [0, 1]. */
  readonly image: Tensor;
}

/** One line of `summary.json`. */
export interface PredictResult {
  readonly input: string;
  /** The engine's score: raw (the map's maximum) or anomalib-normalised; see `score_kind`. */
  readonly pred_score: number;
  readonly score_kind: "raw" | "normalized";
  /** anomalib-normalised score in [0, 1] (0.5 = threshold), when thresholds are known. */
  readonly normalized_score?: number;
  /** Whether the input is anomalous, when thresholds are known. */
  readonly anomalous?: boolean;
  readonly heatmap: string;
}

/**
 * Reads inputs: images are decoded and resized (bilinear, no antialiasing, as anomalib's
 * export does); `.npy` files are N x 3 x H x W (or 3 x H x W) float32 in [0, 1].
 *
 * @throws {InputError} naming a file that cannot be read or has the wrong shape.
 */
export async function readInputs(
  paths: readonly string[],
  size: readonly [number, number],
): Promise<PredictInput[]> {
  const out: PredictInput[] = [];
  for (const path of paths) {
    if (extname(path).toLowerCase() === ".npy") {
      let t = await readNpy(path);
      if (t.shape.length === 3) t = { shape: [1, ...t.shape], data: t.data };
      if (t.shape.length !== 4 || t.shape[1] !== 3) {
        throw new InputError(
          `Cannot use ${path}: expected N x 3 x H x W float32 in [0, 1], got shape [${
            t.shape.join(", ")
          }]`,
        );
      }
      if (t.shape[2] !== size[0] || t.shape[3] !== size[1]) {
        t = resizeBilinear(t, [size[0], size[1]]);
      }
      for (let i = 0; i < t.shape[0]!; i++) out.push({ name: `${path}#${i}`, image: item(t, i) });
    } else {
      const img = await readImage(path);
      let t = imageToTensor(img);
      if (img.height !== size[0] || img.width !== size[1]) {
        t = resizeBilinear(t, [size[0], size[1]]);
      }
      out.push({ name: path, image: item(t, 0) });
    }
  }
  return out;
}

/** Converts a 3 x H x W tensor in [0, 1] to 8-bit RGB for heatmap backgrounds. */
export function tensorToRgb(t: Tensor): RgbImage {
  const [, h = 0, w = 0] = t.shape;
  const data = new Uint8Array(h * w * 3);
  const plane = h * w;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round(t.data[c * plane + p]! * 255);
      data[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: w, height: h, data };
}

/** Options of {@linkcode predict}. */
export interface PredictOptions {
  readonly outDir: string;
  /** Images per engine run. Default 8. */
  readonly batchSize?: number;
  readonly thresholds?: Thresholds;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/**
 * Scores inputs with an engine and writes the results into `outDir`.
 *
 * @returns the per-input results, as in `summary.json`.
 */
export async function predict(
  engine: InferenceEngine,
  inputs: readonly PredictInput[],
  options: PredictOptions,
): Promise<PredictResult[]> {
  if (inputs.length === 0) throw new InputError("Cannot predict: no inputs given");
  await Deno.mkdir(options.outDir, { recursive: true });
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const maps: Tensor[] = [];
  const scores: number[] = [];
  const labels: (boolean | undefined)[] = [];
  for (let i = 0; i < inputs.length; i += batchSize) {
    const chunk = inputs.slice(i, i + batchSize);
    const t0 = performance.now();
    const out = await engine.run(stack(chunk.map((c) => c.image)), {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    options.logger?.info("batch scored", {
      images: chunk.length,
      ms: Math.round(performance.now() - t0),
    });
    for (let k = 0; k < chunk.length; k++) {
      maps.push(item(out.anomalyMap, k));
      scores.push(out.predScore.data[k]!);
      labels.push(out.predLabel ? out.predLabel[k] === 1 : undefined);
    }
  }
  const stem = (name: string, i: number) =>
    `${String(i).padStart(3, "0")}_${basename(name).replace(/[^A-Za-z0-9._-]/g, "_")}`;
  const results: PredictResult[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    const heatmap = `${stem(input.name, i)}_heatmap.png`;
    await Deno.writeFile(
      join(options.outDir, heatmap),
      heatmapPng(maps[i]!, { background: tensorToRgb(input.image), alpha: 0.5 }),
    );
    const raw = scores[i]!;
    const normalized = engine.scoreKind === "raw" && options.thresholds
      ? normalizeScore(raw, options.thresholds)
      : undefined;
    const anomalous = labels[i] ?? (normalized !== undefined ? normalized > 0.5 : undefined);
    results.push({
      input: input.name,
      pred_score: raw,
      score_kind: engine.scoreKind,
      ...(normalized !== undefined ? { normalized_score: normalized } : {}),
      ...(anomalous !== undefined ? { anomalous } : {}),
      heatmap,
    });
  }
  await writeNpy(join(options.outDir, "anomaly_map.npy"), stack(maps));
  await writeNpy(join(options.outDir, "pred_score.npy"), {
    shape: [scores.length, 1],
    data: Float32Array.from(scores),
  });
  return results;
}
