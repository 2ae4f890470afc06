/**
 * Runs an EfficientAD graph (float32 or int8) over frames one at a time and returns each
 * frame's unnormalised maps (`map_st`, `map_ae`) and raw score, for calibration and
 * comparisons.
 *
 * @module
 */
import { type Tensor, tensor } from "../core/tensor.ts";
import { createSession } from "../infer/onnx/session.ts";
import type { RawMaps } from "../model/calibration.ts";

/** Options of {@linkcode graphMaps}. */
export interface GraphMapsOptions {
  /** ONNX Runtime threads. Default: all logical CPUs. */
  readonly intraOpThreads?: number;
  readonly signal?: AbortSignal;
}

/** One frame's maps and the graph's raw score (`pred_score`). */
export interface FrameMaps extends RawMaps {
  readonly score: number;
}

/**
 * The unnormalised maps and raw score of each frame (each `[1, 3, H, W]`).
 *
 * @throws {Error} when ONNX Runtime cannot load or run the graph.
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function graphMaps(
  graph: Uint8Array,
  frames: readonly Tensor[],
  options: GraphMapsOptions = {},
): Promise<FrameMaps[]> {
  const { session } = await createSession(graph, {
    name: "EfficientAD graph",
    ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
  });
  try {
    const maps: FrameMaps[] = [];
    for (const f of frames) {
      options.signal?.throwIfAborted();
      const out = await session.run({ input: session.tensor(f.data, f.shape) }, [
        "map_st",
        "map_ae",
        "pred_score",
      ]);
      const t = (name: string) =>
        tensor(out[name]!.dims, Float32Array.from(out[name]!.data as Float32Array));
      const score = (out.pred_score!.data as Float32Array)[0]!;
      maps.push({ st: t("map_st"), ae: t("map_ae"), score });
    }
    return maps;
  } finally {
    await session.release();
  }
}
