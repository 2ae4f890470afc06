/**
 * The ONNX Runtime engine: the project's own EfficientAD graph, built from the weights at
 * load time, run by onnxruntime-node on the chosen execution provider.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { formatShape, type Tensor } from "../../core/tensor.ts";
import type { Logger } from "../../core/log.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import type { InferenceEngine, InferenceOutput, RunOptions } from "../engine.ts";
import { buildEfficientAdGraph, graphOutputs } from "./efficientad_graph.ts";
import { createSession, type ExecutionProvider } from "./session.ts";

/** Options of {@linkcode createOnnxEngine}. */
export interface OnnxEngineOptions {
  readonly executionProviders?: readonly ExecutionProvider[];
  readonly intraOpThreads?: number;
  /** Also return the autoencoder output (`aeOut`). */
  readonly debug?: boolean;
  readonly logger?: Logger;
}

/** Copies an ONNX Runtime output into a plain tensor. */
export function fromOrt(t: ort.Tensor): Tensor {
  const data = t.data;
  if (!(data instanceof Float32Array)) {
    throw new TypeError(`Cannot read ONNX output of type ${t.type}: expected float32`);
  }
  return { shape: t.dims.map(Number), data };
}

/**
 * Checks a batch against an engine's input size.
 *
 * @throws {RangeError} when it is not `N x 3 x H x W` with the engine's H and W.
 */
export function checkBatch(batch: Tensor, size: readonly [number, number]): void {
  const [n, c, h, w] = batch.shape;
  if (batch.shape.length !== 4 || c !== 3 || h !== size[0] || w !== size[1] || !n) {
    throw new RangeError(
      `Cannot run batch of shape ${formatShape(batch.shape)}: expected [N, 3, ${size[0]}, ${
        size[1]
      }]`,
    );
  }
}

class OnnxEngine implements InferenceEngine {
  readonly description: string;
  readonly scoreKind = "raw" as const;
  readonly inputSize: readonly [number, number];
  readonly provider: ExecutionProvider;
  readonly threads: number;
  #session: ort.InferenceSession;
  #debug: boolean;

  constructor(
    session: ort.InferenceSession,
    model: EfficientAdModel,
    info: { provider: ExecutionProvider; threads: number; debug: boolean },
  ) {
    this.#session = session;
    this.#debug = info.debug;
    this.provider = info.provider;
    this.threads = info.threads;
    this.inputSize = model.config.imageSize;
    this.description = `onnx (${info.provider}, ${info.threads} threads)`;
  }

  async run(batch: Tensor, options: RunOptions = {}): Promise<InferenceOutput> {
    options.signal?.throwIfAborted();
    checkBatch(batch, this.inputSize);
    const input = new ort.Tensor("float32", batch.data, [...batch.shape]);
    const out = await this.#session.run({ input }, graphOutputs(this.#debug));
    const get = (name: string) => {
      const t = out[name];
      if (t === undefined) throw new Error(`Cannot read ONNX output "${name}": missing`);
      return fromOrt(t);
    };
    return {
      anomalyMap: get("anomaly_map"),
      predScore: get("pred_score"),
      mapSt: get("map_st"),
      mapAe: get("map_ae"),
      ...(this.#debug ? { aeOut: get("ae_out") } : {}),
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
 * Builds the model's ONNX graph and opens it in ONNX Runtime.
 *
 * @throws {ModelFormatError} when the weights do not fit the config.
 */
export async function createOnnxEngine(
  model: EfficientAdModel,
  options: OnnxEngineOptions = {},
): Promise<InferenceEngine & { provider: ExecutionProvider; threads: number }> {
  const debug = options.debug ?? false;
  const bytes = buildEfficientAdGraph(model, { debug });
  const { session, provider, threads } = await createSession(bytes, {
    ...options,
    name: `EfficientAD ${model.config.size.toUpperCase()} (${model.provenance.version})`,
  });
  return new OnnxEngine(session, model, { provider, threads, debug });
}
