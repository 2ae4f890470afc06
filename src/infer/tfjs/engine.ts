/**
 * The TensorFlow.js engine: EfficientAD's networks as tfjs ops on the best backend this
 * machine offers (see `backend.ts`), numerically compatible with anomalib.
 *
 * On the wasm and cpu backends a run computes synchronously on the calling thread: it
 * blocks the event loop for the whole batch (about 3 s per 256x256 S image, 9 s per M
 * image on one core with wasm). Host it in a Worker where the event loop must stay live.
 *
 * @example Run a batch
 * ```ts
 * import { createTfjsEngine } from "./engine.ts";
 * import { resolveConfig } from "../../model/config.ts";
 * import { syntheticStateDict } from "../../model/synthetic.ts";
 * import { tensor } from "../../core/tensor.ts";
 *
 * const config = resolveConfig();
 * const model = {
 *   config,
 *   stateDict: syntheticStateDict(config),
 *   provenance: { version: "synthetic", source: "synthetic" },
 *   resize: "bilinear" as const,
 * };
 * await using engine = await createTfjsEngine(model);
 * const out = await engine.run(tensor([1, 3, 256, 256]));
 * console.log(engine.description, out.predScore.data[0]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { formatShape, type Tensor } from "../../core/tensor.ts";
import type { Logger } from "../../core/log.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import { validateStateDict } from "../../model/state_dict.ts";
import type { InferenceEngine, InferenceOutput, RunOptions } from "../engine.ts";
import { selectTfjsBackend, type TfjsBackend, type TfjsBackendKind } from "./backend.ts";
import {
  computeMaps,
  disposeEfficientAdParams,
  type EfficientAdParams,
  efficientAdParams,
} from "./networks.ts";

/** Options of {@linkcode createTfjsEngine}. */
export interface TfjsEngineOptions {
  /** Also return the autoencoder's output (`aeOut`). Default false. */
  readonly debug?: boolean;
  /** Receives the backend choice (info) and the engine's creation (debug). */
  readonly logger?: Logger;
  /**
   * Backend candidates, best first; default every one (see `backend.ts`). The tfjs
   * backend is global to the process: the latest engine's choice applies to all.
   */
  readonly backends?: readonly TfjsBackendKind[];
}

/** An {@linkcode InferenceEngine} running on TensorFlow.js. */
export interface TfjsEngine extends InferenceEngine {
  /** The tfjs backend in use and why better ones were skipped. */
  readonly backend: TfjsBackend;
}

/** Copies a float32 tfjs tensor to a plain tensor with the given shape, then disposes it. */
async function download(t: tf.Tensor, shape: readonly number[]): Promise<Tensor> {
  try {
    const data = await t.data<"float32">();
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`Cannot read tfjs output of dtype ${t.dtype}: expected float32`);
    }
    return { shape: [...shape], data };
  } finally {
    t.dispose();
  }
}

class TfjsEngineImpl implements TfjsEngine {
  readonly description: string;
  readonly scoreKind = "raw" as const;
  readonly inputSize: readonly [number, number];
  readonly backend: TfjsBackend;
  #params: EfficientAdParams | undefined;
  #debug: boolean;

  constructor(params: EfficientAdParams, backend: TfjsBackend, debug: boolean) {
    this.#params = params;
    this.#debug = debug;
    this.backend = backend;
    this.inputSize = params.config.imageSize;
    this.description = `tfjs (${backend.kind}, ${backend.details})`;
  }

  async run(batch: Tensor, options: RunOptions = {}): Promise<InferenceOutput> {
    options.signal?.throwIfAborted();
    const params = this.#params;
    if (params === undefined) throw new Error("Cannot run tfjs engine: it was disposed");
    const [n, c, h, w] = batch.shape;
    const [eh, ew] = this.inputSize;
    if (batch.shape.length !== 4 || c !== 3 || h !== eh || w !== ew || !n) {
      throw new RangeError(
        `Cannot run batch of shape ${formatShape(batch.shape)}: expected [N, 3, ${eh}, ${ew}]`,
      );
    }
    const maps = tf.tidy(() => {
      const x = tf.transpose(tf.tensor4d(batch.data, [n, c, h, w]), [0, 2, 3, 1]);
      const m = computeMaps(params, x, { aeOut: this.#debug });
      // N x H x W x 1 has the memory layout of N x 1 x H x W; aeOut needs a transpose.
      return m.aeOut === undefined ? m : { ...m, aeOut: tf.transpose(m.aeOut, [0, 3, 1, 2]) };
    });
    const mapShape = [n, 1, h, w];
    const [anomalyMap, predScore, mapSt, mapAe, aeOut] = await Promise.all([
      download(maps.anomalyMap, mapShape),
      download(maps.predScore, [n, 1]),
      download(maps.mapSt, mapShape),
      download(maps.mapAe, mapShape),
      maps.aeOut === undefined ? undefined : download(maps.aeOut, maps.aeOut.shape),
    ]);
    return { anomalyMap, predScore, mapSt, mapAe, ...(aeOut ? { aeOut } : {}) };
  }

  [Symbol.asyncDispose](): Promise<void> {
    if (this.#params !== undefined) disposeEfficientAdParams(this.#params);
    this.#params = undefined;
    return Promise.resolve();
  }
}

/**
 * Selects the tfjs backend (once per process), checks the model's weights and uploads
 * them. Dispose the engine to free them.
 *
 * @throws {ModelFormatError} when the state dict does not match the model's config.
 * @throws {Error} when no tfjs backend can be initialised.
 */
export async function createTfjsEngine(
  model: EfficientAdModel,
  options: TfjsEngineOptions = {},
): Promise<TfjsEngine> {
  validateStateDict(model.stateDict, model.config, model.provenance.version);
  const backend = await selectTfjsBackend({
    ...(options.backends ? { candidates: options.backends } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const params = efficientAdParams(model.config, model.stateDict);
  options.logger?.debug("tfjs engine ready", {
    model: model.provenance.version,
    size: model.config.size,
    backend: backend.kind,
  });
  return new TfjsEngineImpl(params, backend, options.debug ?? false);
}
