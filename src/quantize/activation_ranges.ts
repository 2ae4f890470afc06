/**
 * Calibration of activation ranges for the QDQ pass: the float32 graph runs over normal
 * frames (one at a time, to bound memory) with the tensors to quantize added as outputs;
 * each tensor's min / max is collected, and for `percentile` and `entropy` a second pass
 * collects a 2048-bin histogram over that range.
 *
 * - `minmax`: the observed range.
 * - `percentile`: the range from the `(100 - p)`-th to the `p`-th percentile of the values
 *   (for a tensor after a Relu the lower end is 0).
 * - `entropy`: TensorRT's KL-divergence search: for each side of 0 (the positive side
 *   alone for a non-negative tensor), the clipping threshold whose quantized distribution
 *   (256 levels for one side, 128 per side otherwise) has the least KL divergence from the
 *   clipped histogram.
 *
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import type { CalibrationMethod } from "../model/model.ts";
import { createSession } from "../infer/onnx/session.ts";
import onnxProto from "onnx-proto";
import type { Range } from "./qdq_graph.ts";

const { onnx } = onnxProto;

/** Bins of the histograms. */
export const HISTOGRAM_BINS = 2048;

/** Options of {@linkcode activationRanges}. */
export interface RangeOptions {
  /** Default `minmax`. */
  readonly method?: CalibrationMethod;
  /** The percentile of `percentile`, in (50, 100]. Default 99.99. */
  readonly percentile?: number;
  /** ONNX Runtime threads. Default: all logical CPUs. */
  readonly intraOpThreads?: number;
  readonly signal?: AbortSignal;
}

/** The statistics of one tensor over the calibration frames. */
export interface TensorStats {
  readonly min: number;
  readonly max: number;
  /** `HISTOGRAM_BINS` counts over `[min(min, 0), max(max, 0)]`, when collected. */
  readonly histogram?: Float64Array;
}

/** A copy of the graph with the named values added as (untyped-shape) float32 outputs. */
export function withOutputs(graph: Uint8Array, names: readonly string[]): Uint8Array {
  const model = onnx.ModelProto.decode(graph);
  const g = model.graph!;
  const have = new Set((g.output ?? []).map((o) => o.name));
  for (const name of names) {
    if (have.has(name)) continue;
    g.output = [
      ...(g.output ?? []),
      { name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } },
    ];
  }
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Runs the float32 graph over the frames and returns each tensor's statistics (with
 * histograms unless `method` is `minmax`).
 *
 * @throws {RangeError} when there are no frames.
 * @throws {Error} when ONNX Runtime cannot load or run the graph.
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function collectStats(
  graph: Uint8Array,
  tensors: readonly string[],
  frames: readonly Tensor[],
  options: RangeOptions = {},
): Promise<Map<string, TensorStats>> {
  if (frames.length === 0) throw new RangeError("Cannot calibrate activation ranges: no frames");
  const { session } = await createSession(withOutputs(graph, tensors), {
    name: "calibration graph",
    ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
  });
  const mins = new Map<string, number>(tensors.map((t) => [t, Infinity]));
  const maxs = new Map<string, number>(tensors.map((t) => [t, -Infinity]));
  const hists = new Map<string, Float64Array>();
  const wantHist = (options.method ?? "minmax") !== "minmax";
  const pass = async (each: (name: string, data: Float32Array) => void) => {
    for (const f of frames) {
      options.signal?.throwIfAborted();
      const out = await session.run({ input: session.tensor(f.data, f.shape) }, tensors);
      for (const name of tensors) each(name, out[name]!.data as Float32Array);
    }
  };
  try {
    await pass((name, data) => {
      let lo = mins.get(name)!;
      let hi = maxs.get(name)!;
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      mins.set(name, lo);
      maxs.set(name, hi);
    });
    if (wantHist) {
      for (const t of tensors) hists.set(t, new Float64Array(HISTOGRAM_BINS));
      await pass((name, data) => {
        const lo = Math.min(0, mins.get(name)!);
        const hi = Math.max(0, maxs.get(name)!);
        const k = hi > lo ? HISTOGRAM_BINS / (hi - lo) : 0;
        const h = hists.get(name)!;
        const last = HISTOGRAM_BINS - 1;
        for (let i = 0; i < data.length; i++) {
          const b = Math.floor((data[i]! - lo) * k);
          h[b > last ? last : b < 0 ? 0 : b]!++;
        }
      });
    }
  } finally {
    await session.release();
  }
  const stats = new Map<string, TensorStats>();
  for (const t of tensors) {
    const h = hists.get(t);
    stats.set(t, { min: mins.get(t)!, max: maxs.get(t)!, ...(h ? { histogram: h } : {}) });
  }
  return stats;
}

/**
 * The range one method chooses from a tensor's statistics.
 *
 * @throws {RangeError} when the method needs a histogram the statistics lack, or the
 * percentile is outside (50, 100].
 */
export function rangeOf(stats: TensorStats, options: RangeOptions = {}): Range {
  const method = options.method ?? "minmax";
  if (method === "minmax") return { min: stats.min, max: stats.max };
  const h = stats.histogram;
  if (h === undefined) throw new RangeError(`Cannot choose a ${method} range: no histogram`);
  const lo = Math.min(0, stats.min);
  const hi = Math.max(0, stats.max);
  const width = (hi - lo) / h.length;
  if (width === 0) return { min: lo, max: hi };
  const zeroBin = Math.min(h.length, Math.round(-lo / width));
  if (method === "percentile") {
    const p = options.percentile ?? 99.99;
    if (!(p > 50 && p <= 100)) {
      throw new RangeError(`Cannot choose a percentile range: ${p} is not in (50, 100]`);
    }
    let total = 0;
    for (const c of h) total += c;
    const below = total * (1 - p / 100);
    let acc = 0;
    let first = 0;
    while (first < h.length - 1 && acc + h[first]! <= below) acc += h[first++]!;
    acc = 0;
    let last = h.length - 1;
    while (last > 0 && acc + h[last]! <= below) acc += h[last--]!;
    return {
      min: Math.max(stats.min, Math.min(0, lo + first * width)),
      max: Math.min(stats.max, Math.max(0, lo + (last + 1) * width)),
    };
  }
  const pos = h.subarray(zeroBin);
  const neg = h.subarray(0, zeroBin).slice().reverse();
  const levels = neg.length > 0 && pos.length > 0 ? 128 : 256;
  const max = pos.length > 0 ? (entropyBins(pos, levels) * width) : 0;
  const min = neg.length > 0 ? -(entropyBins(neg, levels) * width) : 0;
  return { min: Math.max(stats.min, min), max: Math.min(stats.max, max) };
}

/**
 * TensorRT's entropy calibration on one side's histogram (bin 0 at zero): the number of
 * bins to keep whose `levels`-level quantization diverges least (KL) from the clipped
 * distribution.
 */
export function entropyBins(hist: Float64Array, levels: number): number {
  const n = hist.length;
  if (n <= levels) return n;
  let best = n;
  let bestKl = Infinity;
  const step = Math.max(1, Math.floor((n - levels) / 256));
  for (let i = levels; i <= n; i += step) {
    const p = Float64Array.from(hist.subarray(0, i));
    let outliers = 0;
    for (let j = i; j < n; j++) outliers += hist[j]!;
    p[i - 1]! += outliers;
    // Quantize the clipped (outlier-free) histogram into `levels` chunks, expanded back.
    const q = new Float64Array(i);
    const per = i / levels;
    for (let l = 0; l < levels; l++) {
      const start = Math.floor(l * per);
      const end = l === levels - 1 ? i : Math.floor((l + 1) * per);
      let sum = 0;
      let nonzero = 0;
      for (let j = start; j < end; j++) {
        sum += hist[j]!;
        if (hist[j]! > 0) nonzero++;
      }
      if (nonzero === 0) continue;
      for (let j = start; j < end; j++) if (hist[j]! > 0) q[j] = sum / nonzero;
    }
    const kl = divergence(p, q);
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return best;
}

/** KL(p || q) of two unnormalised histograms, q smoothed where p has mass. */
function divergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let j = 0; j < p.length; j++) {
    sp += p[j]!;
    sq += q[j]!;
  }
  if (sp === 0) return 0;
  const eps = 1e-10;
  let kl = 0;
  for (let j = 0; j < p.length; j++) {
    if (p[j]! === 0) continue;
    const pj = p[j]! / sp;
    const qj = sq > 0 ? Math.max(q[j]! / sq, eps) : eps;
    kl += pj * Math.log(pj / qj);
  }
  return kl;
}

/**
 * Calibrates the ranges of the named tensors on the frames with one method.
 *
 * @throws {RangeError} when there are no frames, or the percentile is out of range.
 * @throws {Error} when ONNX Runtime cannot load or run the graph.
 */
export async function activationRanges(
  graph: Uint8Array,
  tensors: readonly string[],
  frames: readonly Tensor[],
  options: RangeOptions = {},
): Promise<Map<string, Range>> {
  const stats = await collectStats(graph, tensors, frames, options);
  return new Map([...stats].map(([t, s]) => [t, rangeOf(s, options)]));
}
