/**
 * Opens the inference engine an artifact and a `type` ask for. The TensorFlow.js engine is
 * imported only when asked for, so the ONNX hot path never loads it.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import type { Artifact } from "../model/artifact.ts";
import type { InferenceEngine } from "./engine.ts";
import { createAnomalibOnnxEngine } from "./onnx/anomalib_engine.ts";
import { createOnnxEngine } from "./onnx/engine.ts";
import type { ExecutionProvider } from "./onnx/session.ts";
import type { Precision } from "../core/frame.ts";

/** Engine types: the project's ONNX graph in ONNX Runtime, or TensorFlow.js. */
export type EngineType = "onnx" | "tfjs";

/** Options of {@linkcode createEngine}. */
export interface EngineOptions {
  /** Where the model runs (a pipeline's `model.engine`; the CLI's `--engine`). */
  readonly type: EngineType;
  readonly executionProviders?: readonly ExecutionProvider[];
  readonly intraOpThreads?: number;
  readonly debug?: boolean;
  readonly logger?: Logger;
  /**
   * The graph's precision (a pipeline's `model.precision`; the CLI's `--precision`):
   * `int8` and `fp16` exist for the project's own models in the `onnx` engine; elsewhere
   * the engine runs fp32 and says so. Default `fp32`.
   */
  readonly precision?: Precision;
}

/**
 * Opens an engine for an artifact. anomalib ONNX exports always run in ONNX Runtime.
 *
 * @throws {RangeError} when `tfjs` is asked for an anomalib ONNX export.
 * @throws {ModelFormatError} when the model cannot be loaded.
 */
export async function createEngine(
  artifact: Artifact,
  options: EngineOptions,
): Promise<InferenceEngine> {
  const type = options.type;
  if (artifact.kind === "anomalib-onnx") {
    if (type !== "onnx") {
      throw new RangeError(
        `Cannot run ${artifact.path} with engine ${type}: an anomalib ONNX export runs in onnx only`,
      );
    }
    warnFp32(options, `${artifact.path} is an anomalib ONNX export, served as it is`);
    return await createAnomalibOnnxEngine(artifact.path, options);
  }
  if (type === "tfjs") {
    warnFp32(options, "the tfjs engine runs fp32 only");
    const { createTfjsEngine } = await import("./tfjs/engine.ts");
    return await createTfjsEngine(artifact.model, {
      ...(options.debug !== undefined ? { debug: options.debug } : {}),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
    });
  }
  return await createOnnxEngine(artifact.model, options);
}

function warnFp32(options: EngineOptions, reason: string): void {
  const p = options.precision ?? "fp32";
  if (p !== "fp32") options.logger?.warn(`${p} not used: serving fp32`, { reason });
}
