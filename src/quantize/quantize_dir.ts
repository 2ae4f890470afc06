/**
 * Quantizes a project model directory in place: reads the model, builds its int8 graph
 * on normal frames ({@linkcode quantizeModel}) and adds it to the directory with
 * `writeInt8Graph` (the graph file first, `model.json` last: a crash leaves the old
 * state). `quantize`, `export --precision int8` and `train --int8` all end here.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../core/tensor.ts";
 * import { quantizeModelDir } from "./quantize_dir.ts";
 *
 * async function addInt8(dir: string, normalFrames: Tensor[]) {
 *   const int8 = await quantizeModelDir(dir, normalFrames, { method: "minmax" });
 *   return int8.thresholds.threshold;
 * }
 * ```
 *
 * @module
 */
import type { Tensor } from "../core/tensor.ts";
import type { Int8Graph } from "../model/model.ts";
import { readProjectModel, writeInt8Graph } from "../model/project_format.ts";
import { quantizeModel, type QuantizeOptions } from "./quantize_model.ts";

/**
 * Builds the int8 graph of the model in `dir` on `frames` (each `[1, 3, H, W]` in [0, 1]
 * at the model's size) and writes it into `dir`, replacing any int8 graph it had.
 *
 * @returns the int8 graph as the model now carries it.
 * @throws {ModelFormatError} when `dir` is not a readable project model.
 * @throws as {@linkcode quantizeModel}, and file-system errors of the writes.
 */
export async function quantizeModelDir(
  dir: string,
  frames: readonly Tensor[],
  options: QuantizeOptions = {},
): Promise<Int8Graph> {
  const model = await readProjectModel(dir, options.signal ? { signal: options.signal } : {});
  const build = await quantizeModel(model, frames, options);
  options.signal?.throwIfAborted();
  return await writeInt8Graph(dir, build.graph, {
    calibration: build.calibration,
    quantiles: build.quantiles,
    thresholds: build.thresholds,
  });
}
