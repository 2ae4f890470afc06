/**
 * Serves an ONNX model exported by anomalib as it is: input `input` (N x 3 x H x W, RGB in
 * [0, 1]; the graph resizes itself), outputs `pred_score`, `pred_label`, `anomaly_map`,
 * `pred_mask` mapped onto the project's {@linkcode InferenceOutput}. anomalib bakes its
 * thresholds into the graph, so scores are normalised (0.5 is the decision boundary).
 *
 * @module
 */
import { errorMessage, ModelFormatError } from "../../core/errors.ts";
import type { Logger } from "../../core/log.ts";
import type { Tensor } from "../../core/tensor.ts";
import type { InferenceEngine, InferenceOutput, RunOptions } from "../engine.ts";
import { checkBatch, fromOrt } from "./engine.ts";
import {
  createSession,
  type ExecutionProvider,
  type RuntimeSession,
  type RuntimeTensor,
} from "./session.ts";

/** The nominal input size of an anomalib export whose input size is dynamic (it accepts any). */
export const ANOMALIB_DEFAULT_SIZE: readonly [number, number] = [256, 256];

/** Options of {@linkcode createAnomalibOnnxEngine}. */
export interface AnomalibEngineOptions {
  readonly executionProviders?: readonly ExecutionProvider[];
  readonly intraOpThreads?: number;
  readonly logger?: Logger;
}

function toBool(t: RuntimeTensor): Uint8Array {
  const d = t.data;
  if (d instanceof Uint8Array) return d;
  if (d instanceof Float32Array) return Uint8Array.from(d, (v) => (v > 0.5 ? 1 : 0));
  throw new TypeError(`Cannot read output of type ${t.type} as labels`);
}

class AnomalibOnnxEngine implements InferenceEngine {
  readonly description: string;
  readonly scoreKind = "normalized" as const;
  readonly inputSize: readonly [number, number];
  #session: RuntimeSession;
  #fixed: boolean;

  constructor(
    session: RuntimeSession,
    size: readonly [number, number] | undefined,
    provider: string,
  ) {
    this.#session = session;
    this.#fixed = size !== undefined;
    this.inputSize = size ?? ANOMALIB_DEFAULT_SIZE;
    this.description = `anomalib-onnx (${provider})`;
  }

  async run(batch: Tensor, options: RunOptions = {}): Promise<InferenceOutput> {
    options.signal?.throwIfAborted();
    // A dynamic-size export resizes by itself: any H x W is accepted.
    if (this.#fixed) checkBatch(batch, this.inputSize);
    else if (batch.shape.length !== 4 || batch.shape[1] !== 3) checkBatch(batch, this.inputSize);
    const n = batch.shape[0]!;
    const names = this.#session.outputNames.filter((o) =>
      ["pred_score", "anomaly_map", "pred_label"].includes(o)
    );
    const out = await this.#session.run(
      { input: this.#session.tensor(batch.data, batch.shape) },
      names,
    );
    const score = fromOrt(out["pred_score"]!);
    const map = fromOrt(out["anomaly_map"]!);
    const [h, w] = map.shape.slice(-2) as [number, number];
    const label = out["pred_label"];
    return {
      predScore: { shape: [n, 1], data: score.data },
      anomalyMap: { shape: [n, 1, h, w], data: map.data },
      ...(label ? { predLabel: toBool(label) } : {}),
    };
  }

  #released: Promise<void> | undefined;

  /** Frees the native session; safe to call more than once. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#released ??= this.#session.release();
    return this.#released;
  }
}

/**
 * Opens an anomalib ONNX export.
 *
 * @throws {ModelFormatError} when the file is not a loadable ONNX model or lacks the
 * input `input` or the outputs `pred_score` and `anomaly_map`.
 */
export async function createAnomalibOnnxEngine(
  path: string,
  options: AnomalibEngineOptions = {},
): Promise<InferenceEngine> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ModelFormatError(path, errorMessage(e), { cause: e });
  }
  let opened;
  try {
    opened = await createSession(bytes, { ...options, name: path });
  } catch (e) {
    throw new ModelFormatError(path, `not a loadable ONNX model (${errorMessage(e)})`, {
      cause: e,
    });
  }
  const { session, provider } = opened;
  const missing = [
    ...(session.inputNames.includes("input") ? [] : ["input `input`"]),
    ...["pred_score", "anomaly_map"].filter((o) => !session.outputNames.includes(o))
      .map((o) => `output \`${o}\``),
  ];
  if (missing.length > 0) {
    await session.release();
    throw new ModelFormatError(
      path,
      `not an anomalib export: missing ${missing.join(", ")} (has inputs ${
        session.inputNames.join(", ")
      }; outputs ${session.outputNames.join(", ")})`,
    );
  }
  return new AnomalibOnnxEngine(session, fixedInputSize(session), provider);
}

/** The input's H and W when the export fixed them. */
function fixedInputSize(session: RuntimeSession): [number, number] | undefined {
  const dims = session.inputDims("input");
  if (dims === undefined) return undefined;
  const [, , h, w] = dims;
  return typeof h === "number" && typeof w === "number" ? [h, w] : undefined;
}
