/**
 * Evaluation of a model on an MVTec-style category: the engine scores every test image,
 * and the metrics of {@linkcode ./metrics.ts} are computed on the raw maps and scores.
 *
 * Images are resized to the engine's input size with {@linkcode resizeBilinear} (as
 * anomalib's export does) when they differ; masks are resized to the map's size with
 * nearest-neighbour sampling so they stay binary.
 *
 * @module
 */
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { stack, type Tensor } from "../core/tensor.ts";
import { imageToTensor, readImage, type RgbImage, tensorToImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { type MvtecCategory, readMask, type TestSample } from "./dataset.ts";
import { auroc, f1Max, pixelCurves, type RocCurve, rocCurve, trapezoid } from "./metrics.ts";

/** One scored test image. */
export interface ScoredImage {
  readonly sample: TestSample;
  /** The engine's image score (raw: the map's maximum, unless the engine says otherwise). */
  readonly score: number;
  /** The anomaly map, `mapSize` pixels. */
  readonly map: Float32Array;
  /** The ground truth at `mapSize`, 0/1. */
  readonly mask: Uint8Array;
  /** The input as the model saw it (8-bit RGB at the input size), when `keepImages`. */
  readonly image?: RgbImage;
}

/** The metrics, named as in the JSON output. */
export interface EvalMetrics {
  /** Image-level AUROC of the image scores. */
  readonly image_auroc: number;
  /** Pixel-level AUROC over all pixels of all test images. */
  readonly pixel_auroc: number;
  /** Area under the PRO curve up to `aupro_fpr_limit`, normalised (1 = perfect). */
  readonly aupro: number;
  /** The FPR limit of `aupro`. */
  readonly aupro_fpr_limit: number;
  /** Image-level F1-max (anomalib's `F1Max`). */
  readonly f1_max: number;
  /** The image-score threshold reaching `f1_max` (anomalous when score >= threshold). */
  readonly threshold: number;
  /** Precision and recall at `threshold`. */
  readonly precision: number;
  readonly recall: number;
  /** Image AUROC of each defect type against the normal images. */
  readonly per_defect: Readonly<Record<string, { images: number; image_auroc: number }>>;
}

/** Counts of what was evaluated. */
export interface EvalCounts {
  readonly images: number;
  readonly normal: number;
  readonly anomalous: number;
  readonly pixels: number;
  readonly anomalous_pixels: number;
  /** Ground-truth regions (8-connected components of the masks). */
  readonly regions: number;
}

/** The result of {@linkcode evaluate}. */
export interface Evaluation {
  readonly metrics: EvalMetrics;
  readonly counts: EvalCounts;
  readonly images: readonly ScoredImage[];
  readonly imageRoc: RocCurve;
  readonly pixelRoc: RocCurve;
  readonly proCurve: RocCurve;
  /** Height and width of the maps and masks. */
  readonly mapSize: readonly [number, number];
  /** Milliseconds spent reading and resizing, in the engine, and in the metrics. */
  readonly timing: {
    readonly read_ms: number;
    readonly inference_ms: number;
    readonly metrics_ms: number;
  };
}

/** Options of {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** Images per engine run. Default 8. */
  readonly batchSize?: number;
  /** FPR limit of AU-PRO. Default 0.3. */
  readonly fprLimit?: number;
  /** Keep each input image (for the report). Default false. */
  readonly keepImages?: boolean;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/**
 * Scores a category's test images with an engine and computes the metrics.
 *
 * @throws {InputError} when the category lacks normal or anomalous test images, an image
 * or mask cannot be read, or the masks mark no anomalous pixel.
 */
export async function evaluate(
  engine: InferenceEngine,
  category: MvtecCategory,
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const samples = category.test;
  const normal = samples.filter((s) => s.label === 0).length;
  if (normal === 0 || normal === samples.length) {
    throw new InputError(
      `Cannot evaluate ${category.root}: the test images must include normal (test/good) and ` +
        `anomalous ones, got ${normal} normal of ${samples.length}`,
    );
  }
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const [inH, inW] = engine.inputSize;
  const scored: ScoredImage[] = [];
  let readMs = 0;
  let inferMs = 0;
  let mapSize: [number, number] | undefined;
  for (let i = 0; i < samples.length; i += batchSize) {
    options.signal?.throwIfAborted();
    const chunk = samples.slice(i, i + batchSize);
    let t0 = performance.now();
    const inputs: Tensor[] = [];
    for (const s of chunk) {
      const img = await readImage(s.path, options.signal ? { signal: options.signal } : {});
      let t = imageToTensor(img);
      if (img.height !== inH || img.width !== inW) t = resizeBilinear(t, [inH, inW]);
      inputs.push({ shape: t.shape.slice(1), data: t.data });
    }
    readMs += performance.now() - t0;
    t0 = performance.now();
    const out = await engine.run(stack(inputs), options.signal ? { signal: options.signal } : {});
    const ms = performance.now() - t0;
    inferMs += ms;
    const [, , h, w] = out.anomalyMap.shape;
    if (h === undefined || w === undefined) {
      throw new RangeError(
        `Cannot evaluate: the engine returned maps of rank ${out.anomalyMap.shape.length}`,
      );
    }
    mapSize ??= [h, w];
    if (mapSize[0] !== h || mapSize[1] !== w) {
      throw new RangeError(
        `Cannot evaluate: the engine returned ${h}x${w} maps after ${mapSize[0]}x${
          mapSize[1]
        } ones`,
      );
    }
    t0 = performance.now();
    for (let k = 0; k < chunk.length; k++) {
      const sample = chunk[k]!;
      const map = out.anomalyMap.data.slice(k * h * w, (k + 1) * h * w);
      const mask = await readMask(sample, [h, w]);
      const input = inputs[k]!;
      scored.push({
        sample,
        score: out.predScore.data[k]!,
        map,
        mask,
        ...(options.keepImages ? { image: tensorToImage(input) } : {}),
      });
    }
    readMs += performance.now() - t0;
    options.logger?.info("batch scored", {
      images: `${Math.min(i + batchSize, samples.length)}/${samples.length}`,
      ms: Math.round(ms),
    });
  }
  const size = mapSize!;
  const t0 = performance.now();
  const result = computeMetrics(scored, {
    size,
    fprLimit: options.fprLimit ?? 0.3,
    where: category.root,
  });
  return {
    ...result,
    images: scored,
    mapSize: size,
    timing: {
      read_ms: Math.round(readMs),
      inference_ms: Math.round(inferMs),
      metrics_ms: Math.round(performance.now() - t0),
    },
  };
}

/** Options of {@linkcode computeMetrics}. */
export interface ComputeMetricsOptions {
  /** Height and width of every map and mask. */
  readonly size: readonly [number, number];
  /** FPR limit of AU-PRO. Default 0.3. */
  readonly fprLimit?: number;
  /** What was evaluated, for messages. Default `the test set`. */
  readonly where?: string;
}

/**
 * The metrics of scored images whose maps and masks are all `options.size`.
 *
 * @throws {InputError} when there are no anomalous pixels or images of one class are missing.
 */
export function computeMetrics(
  images: readonly ScoredImage[],
  options: ComputeMetricsOptions,
): Pick<Evaluation, "metrics" | "counts" | "imageRoc" | "pixelRoc" | "proCurve"> {
  const [h, w] = options.size;
  const fprLimit = options.fprLimit ?? 0.3;
  const where = options.where ?? "the test set";
  const plane = h * w;
  const scores = Float64Array.from(images, (s) => s.score);
  const labels = Uint8Array.from(images, (s) => s.sample.label);
  const maps = new Float32Array(plane * images.length);
  const masks = new Uint8Array(plane * images.length);
  images.forEach((s, i) => {
    maps.set(s.map, i * plane);
    masks.set(s.mask, i * plane);
  });
  let anomalousPixels = 0;
  for (let p = 0; p < masks.length; p++) anomalousPixels += masks[p]!;
  if (anomalousPixels === 0) {
    throw new InputError(
      `Cannot evaluate ${where}: the ground-truth masks mark no anomalous pixel`,
    );
  }
  const imageRoc = rocCurve(scores, labels);
  const { roc: pixelRoc, pro, regions } = pixelCurves(maps, masks, { width: w, height: h });
  const f1 = f1Max(scores, labels);
  const perDefect: Record<string, { images: number; image_auroc: number }> = {};
  const defects = [...new Set(images.map((s) => s.sample.defect))].filter((d) => d !== "good");
  for (const d of defects) {
    const subset = images.filter((s) => s.sample.label === 0 || s.sample.defect === d);
    perDefect[d] = {
      images: subset.filter((s) => s.sample.defect === d).length,
      image_auroc: auroc(subset.map((s) => s.score), subset.map((s) => s.sample.label)),
    };
  }
  if (!(fprLimit > 0 && fprLimit <= 1)) {
    throw new RangeError(`Cannot compute AU-PRO: FPR limit ${fprLimit} is not in (0, 1]`);
  }
  return {
    metrics: {
      image_auroc: trapezoid(imageRoc.fpr, imageRoc.tpr),
      pixel_auroc: trapezoid(pixelRoc.fpr, pixelRoc.tpr),
      aupro: trapezoid(pro.fpr, pro.tpr, { xMax: fprLimit }) / fprLimit,
      aupro_fpr_limit: fprLimit,
      f1_max: f1.f1,
      threshold: f1.threshold,
      precision: f1.precision,
      recall: f1.recall,
      per_defect: perDefect,
    },
    counts: {
      images: images.length,
      normal: images.length - labels.reduce((a, b) => a + b, 0),
      anomalous: labels.reduce((a, b) => a + b, 0),
      pixels: masks.length,
      anomalous_pixels: anomalousPixels,
      regions,
    },
    imageRoc,
    pixelRoc,
    proCurve: pro,
  };
}
