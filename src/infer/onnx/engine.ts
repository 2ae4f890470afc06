/**
 * The ONNX Runtime engine: the project's own EfficientAD graph, built from the weights at
 * load time, run by onnxruntime-node on the chosen execution provider, or by
 * onnxruntime-web on Deno's WebGPU adapter (`webgpu`).
 *
 * @module
 */
import { formatShape, type Tensor } from "../../core/tensor.ts";
import type { Logger } from "../../core/log.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import type { Precision } from "../../core/frame.ts";
import { readInt8Graph } from "../../model/project_format.ts";
import type { InferenceEngine, InferenceOutput, RunOptions } from "../engine.ts";
import { buildEfficientAdGraph, graphOutputs } from "./efficientad_graph.ts";
import type { AdapterInfo } from "../webgpu/adapter.ts";
import { describeAdapter, webGpuAdapter } from "../webgpu/adapter.ts";
import { errorMessage } from "../../core/errors.ts";
import {
  createSession,
  type ExecutionProvider,
  type OpenedSession,
  type RuntimeSession,
  type RuntimeTensor,
} from "./session.ts";

/** Options of {@linkcode createOnnxEngine}. */
export interface OnnxEngineOptions {
  readonly executionProviders?: readonly ExecutionProvider[];
  readonly intraOpThreads?: number;
  /** Also return the autoencoder output (`aeOut`). */
  readonly debug?: boolean;
  readonly logger?: Logger;
  /**
   * `fp16`: a half-precision graph (see `GraphOptions.precision`) when the engine runs on
   * `webgpu` on an adapter with `shader-f16`; `int8`: the model's int8 graph
   * (`EfficientAdModel.int8`, checked against its sha256). When the precision cannot be
   * served the engine runs the float32 graph and says why in a warning. Default `fp32`.
   */
  readonly precision?: Precision;
}

/**
 * Views an ONNX Runtime output as a plain tensor (no copy).
 *
 * @throws {TypeError} when it is not float32.
 */
export function fromOrt(t: RuntimeTensor): Tensor {
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
  readonly adapter?: AdapterInfo;
  #session: RuntimeSession;
  #debug: boolean;
  #outputs: readonly string[];

  readonly precision: Precision;

  constructor(
    opened: OpenedSession,
    model: EfficientAdModel,
    info: { debug: boolean; precision: Precision },
  ) {
    const debug = info.debug;
    this.precision = info.precision;
    this.#session = opened.session;
    this.#debug = debug;
    this.#outputs = graphOutputs(debug);
    this.provider = opened.provider;
    this.threads = opened.threads;
    this.inputSize = model.config.imageSize;
    if (opened.adapter) this.adapter = opened.adapter;
    this.description = engineDescription(opened, info.precision);
  }

  async run(batch: Tensor, options: RunOptions = {}): Promise<InferenceOutput> {
    options.signal?.throwIfAborted();
    checkBatch(batch, this.inputSize);
    const input = this.#session.tensor(batch.data, batch.shape);
    const out = await this.#session.run({ input }, this.#outputs);
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
 * How an engine on an opened session describes itself: `onnx (cpu, 2 threads)`, or
 * `onnx (webgpu, onnxruntime-web, llvmpipe (LLVM 15.0.6, 256 bits), vendor 0x10005, fp16)`,
 * `onnx (cpu int8, 2 threads)`.
 */
export function engineDescription(
  opened: OpenedSession,
  precision: Precision = "fp32",
): string {
  const graph = precision === "fp32" ? "" : ` ${precision}`;
  if (opened.provider === "webgpu") {
    const on = opened.adapter ? `, ${describeAdapter(opened.adapter)}` : "";
    return `onnx (webgpu${graph}, ${opened.session.runtime}${on})`;
  }
  return `onnx (${opened.provider}${graph}, ${opened.threads} threads)`;
}

/**
 * Builds the model's ONNX graph (or reads its int8 graph) and opens it in ONNX Runtime.
 * A precision that cannot be served falls back to the float32 graph with a warning
 * naming the reason: a missing, unreadable, altered or unloadable int8 file never stops
 * the model from serving.
 *
 * @throws {ModelFormatError} when the weights do not fit the config.
 */
export async function createOnnxEngine(
  model: EfficientAdModel,
  options: OnnxEngineOptions = {},
): Promise<
  InferenceEngine & { provider: ExecutionProvider; threads: number; adapter?: AdapterInfo }
> {
  const debug = options.debug ?? false;
  const name = `EfficientAD ${model.config.size.toUpperCase()} (${model.provenance.version})`;
  if (options.precision === "fp16") {
    const why = await fp16Unavailable(options.executionProviders ?? []);
    if (why === undefined) {
      try {
        const opened = await createSession(
          buildEfficientAdGraph(model, { debug, precision: "fp16" }),
          {
            ...options,
            executionProviders: ["webgpu"],
            cpuLast: false,
            name: `${name} fp16`,
          },
        );
        return new OnnxEngine(opened, model, { debug, precision: "fp16" });
      } catch (e) {
        options.logger?.warn(`fp16 graph not used for ${name}`, { reason: errorMessage(e) });
      }
    } else {
      options.logger?.warn(`fp16 graph not used for ${name}`, { reason: why });
    }
  }
  if (options.precision === "int8") {
    const int8 = await openInt8(model, name, options);
    if (int8 !== undefined) return new OnnxEngine(int8, model, { debug, precision: "int8" });
  }
  const bytes = buildEfficientAdGraph(model, { debug });
  const opened = await createSession(bytes, { ...options, name });
  return new OnnxEngine(opened, model, { debug, precision: "fp32" });
}

/** Opens the model's int8 graph, or says why not (undefined: serve fp32). */
async function openInt8(
  model: EfficientAdModel,
  name: string,
  options: OnnxEngineOptions,
): Promise<OpenedSession | undefined> {
  const int8 = model.int8;
  const notUsed = (reason: string) => {
    options.logger?.warn(`int8 graph not used for ${name}: serving fp32`, { reason });
    return undefined;
  };
  if (int8 === undefined) {
    return notUsed(
      "the model has no int8 graph (make one with `quantize --model <dir> --data " +
        "<normal images>`, or train with --int8)",
    );
  }
  if (options.debug) return notUsed("the debug outputs exist in the fp32 graph only");
  let bytes: Uint8Array;
  try {
    bytes = await readInt8Graph(int8);
  } catch (e) {
    return notUsed(errorMessage(e));
  }
  try {
    return await createSession(bytes, { ...options, name: `${name} int8` });
  } catch (e) {
    return notUsed(`ONNX Runtime cannot load ${int8.path}: ${errorMessage(e)}`);
  }
}

/** Why a half-precision graph cannot run, or undefined when it can (webgpu with shader-f16). */
async function fp16Unavailable(
  providers: readonly ExecutionProvider[],
): Promise<string | undefined> {
  if (!providers.includes("webgpu")) return "it runs on webgpu only";
  const probe = await webGpuAdapter();
  if (!probe.ok) return probe.reason;
  if (!probe.adapter.shaderF16) return "the WebGPU adapter has no shader-f16";
  return undefined;
}
