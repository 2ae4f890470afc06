/**
 * Builds a model's int8 graph: activation ranges calibrated on normal frames through the
 * float32 graph, the QDQ pass (int8 convolutions, float32 map arithmetic), then the
 * quantiles and thresholds recomputed from the int8 graph's own maps on the same frames
 * and written into it. The int8 graph has the float32 graph's interface (input `input`,
 * outputs `anomaly_map`, `pred_score`, `map_st`, `map_ae`) and always normalises its maps
 * with its own quantiles, whether or not the float32 model had any.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "../model/config.ts";
 * import { syntheticModel } from "../model/synthetic.ts";
 * import { quantizeModel } from "./quantize_model.ts";
 *
 * const model = syntheticModel(resolveConfig({ teacherOutChannels: 8 }));
 * const frames = [{
 *   shape: [1, 3, 256, 256],
 *   data: Float32Array.from({ length: 3 * 256 * 256 }, Math.random),
 * }];
 * const { graph, thresholds } = await quantizeModel(model, frames, { intraOpThreads: 1 });
 * ```
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import { formatShape, type Tensor, tensor } from "../core/tensor.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { calibrationFromMaps } from "../model/calibration.ts";
import type {
  CalibrationMethod,
  EfficientAdModel,
  Int8Calibration,
  Thresholds,
} from "../model/model.ts";
import { type Quantiles, quantilesOf, type StateDict } from "../model/state_dict.ts";
import { activationRanges } from "./activation_ranges.ts";
import { graphMaps } from "./graph_maps.ts";
import { withQuantiles } from "./graph_quantiles.ts";
import { prepareGraph, quantizableTensors, quantizeGraph } from "./qdq_graph.ts";

/**
 * The calibration method used when none is asked for, chosen with `deno task
 * quant:compare` on anomalib's S fixture and MVTec bottle (16 calibration frames, 32
 * held-out): minmax's maps correlate 0.99999 (worst) with float32's, worst error 0.6 % of
 * the map range, as good as percentile 99.999 and better than 99.9 / 99.99 or entropy,
 * and it needs one calibration pass instead of two.
 */
export const DEFAULT_METHOD: CalibrationMethod = "minmax";
/** The percentile of the `percentile` method when none is given. */
export const DEFAULT_PERCENTILE = 99.99;

/** Options of {@linkcode quantizeModel}. */
export interface QuantizeOptions {
  /** How activation ranges are chosen. Default {@linkcode DEFAULT_METHOD}. */
  readonly method?: CalibrationMethod;
  /** The percentile of `percentile`, in (50, 100]. Default {@linkcode DEFAULT_PERCENTILE}. */
  readonly percentile?: number;
  /** ONNX Runtime threads. Default: all logical CPUs. */
  readonly intraOpThreads?: number;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/** A built int8 graph and what was calibrated for it. */
export interface Int8Build {
  /** The ONNX bytes. */
  readonly graph: Uint8Array;
  readonly calibration: Int8Calibration;
  /** The quantiles inside `graph`, from its own maps. */
  readonly quantiles: Quantiles;
  /** Thresholds on `graph`'s raw score, from its own maps. */
  readonly thresholds: Thresholds;
}

/**
 * Quantizes a model (see the module doc). `frames`: each `[1, 3, H, W]` float32 RGB in
 * [0, 1] at the model's size, normal images.
 *
 * @throws {RangeError} when there are no frames, a frame has the wrong shape, or the
 * percentile is outside (50, 100].
 * @throws {ModelFormatError} when the model's weights do not match its config.
 * @throws {Error} when ONNX Runtime cannot run the float32 or the int8 graph.
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function quantizeModel(
  model: EfficientAdModel,
  frames: readonly Tensor[],
  options: QuantizeOptions = {},
): Promise<Int8Build> {
  const t0 = performance.now();
  const [H, W] = model.config.imageSize;
  if (frames.length === 0) throw new RangeError("Cannot quantize the model: no frames");
  frames.forEach((f, i) => {
    const [n, c, h, w] = f.shape;
    if (f.shape.length !== 4 || n !== 1 || c !== 3 || h !== H || w !== W) {
      throw new RangeError(
        `Cannot quantize the model: frame ${i} is ${formatShape(f.shape)}, expected ` +
          formatShape([1, 3, H, W]),
      );
    }
  });
  const method = options.method ?? DEFAULT_METHOD;
  const percentile = options.percentile ?? DEFAULT_PERCENTILE;
  if (method === "percentile" && !(percentile > 50 && percentile <= 100)) {
    throw new RangeError(`Cannot quantize the model: percentile ${percentile} not in (50, 100]`);
  }
  const threads = options.intraOpThreads !== undefined
    ? { intraOpThreads: options.intraOpThreads }
    : {};
  // Placeholder quantiles when the model has none, so that the graph carries the
  // normalisation; they do not change the activations nor the raw maps.
  const fp32 = prepareGraph(buildEfficientAdGraph(withSomeQuantiles(model)));
  const tensors = quantizableTensors(fp32);
  options.logger?.info("calibrating int8 activation ranges", {
    frames: frames.length,
    tensors: tensors.length,
    method,
  });
  const ranges = await activationRanges(fp32, tensors, frames, {
    method,
    percentile,
    ...threads,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const qdq = quantizeGraph(fp32, ranges);
  const maps = await graphMaps(qdq, frames, {
    ...threads,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const cal = calibrationFromMaps(maps);
  const quantiles: Quantiles = { qaSt: cal.qaSt, qbSt: cal.qbSt, qaAe: cal.qaAe, qbAe: cal.qbAe };
  const graph = withQuantiles(qdq, quantiles);
  const seconds = (performance.now() - t0) / 1000;
  options.logger?.info("int8 graph calibrated", {
    seconds: Number(seconds.toFixed(2)),
    threshold: cal.thresholds.threshold,
  });
  return {
    graph,
    calibration: {
      method,
      ...(method === "percentile" ? { percentile } : {}),
      frames: frames.length,
      seconds,
      createdAt: new Date().toISOString(),
    },
    quantiles,
    thresholds: cal.thresholds,
  };
}

/** The model itself when it has quantiles, else a copy with placeholder quantiles. */
function withSomeQuantiles(model: EfficientAdModel): EfficientAdModel {
  if (quantilesOf(model.stateDict)) return model;
  const dict: StateDict = new Map(model.stateDict);
  const one = (v: number) => tensor([], Float32Array.of(v));
  dict.set("quantiles.qa_st", one(0));
  dict.set("quantiles.qb_st", one(1));
  dict.set("quantiles.qa_ae", one(0));
  dict.set("quantiles.qb_ae", one(1));
  return { ...model, stateDict: dict };
}
