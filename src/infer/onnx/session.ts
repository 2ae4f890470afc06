/**
 * Creates ONNX Runtime sessions with a preference list of execution providers, falling
 * back along the list to CPU, and says which provider (and GPU adapter) it got.
 *
 * Two runtimes sit behind one {@linkcode RuntimeSession}: onnxruntime-node (CPU, CUDA,
 * TensorRT, and on linux-x64 its bundled Dawn WebGPU) and onnxruntime-web's WebGPU build
 * on Deno's own `navigator.gpu` (any platform with a Vulkan, Metal or Direct3D driver).
 * Their `Tensor` classes differ: feeds are made with the session's
 * {@linkcode RuntimeSession.tensor}, outputs are read through {@linkcode RuntimeTensor}.
 *
 * `webgpu` in the list means: onnxruntime-node's WebGPU where it is bundled, then
 * onnxruntime-web's on Deno's adapter (loaded only then: the CPU path never loads it).
 *
 * @module
 */
import { errorMessage } from "../../core/errors.ts";
import * as ort from "onnxruntime-node";
import type { Logger } from "../../core/log.ts";
import { type AdapterInfo, describeAdapter, webGpuAdapter } from "../webgpu/adapter.ts";

/** Execution providers this project knows how to ask ONNX Runtime for. */
export type ExecutionProvider = "tensorrt" | "cuda" | "webgpu" | "cpu";

/** Which ONNX Runtime package runs a session. */
export type OnnxRuntimeName = "onnxruntime-node" | "onnxruntime-web";

/** Options of {@linkcode createSession}. */
export interface SessionOptions {
  /** Providers to try in order; `cpu` is always tried last. Default `["cpu"]`. */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** Threads for one operator; default: the number of logical CPUs. */
  readonly intraOpThreads?: number;
  /** Where to say which provider is in use and why others were skipped. */
  readonly logger?: Logger;
  /** A name for messages: the model file or "EfficientAD S 256x256". */
  readonly name?: string;
  /**
   * ONNX Runtime's log severity for GPU sessions (0 verbose: shows which nodes run where).
   * Default 4 (fatal only): a provider that fails is reported by the fallback line.
   */
  readonly gpuLogSeverity?: 0 | 1 | 2 | 3 | 4;
  /** Whether the CPU is tried after the list. Default true. */
  readonly cpuLast?: boolean;
}

/** A tensor as either runtime returns it, or a plain float32 feed. */
export interface RuntimeTensor {
  readonly type: string;
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** A loaded model in one of the runtimes. */
export interface RuntimeSession {
  readonly runtime: OnnxRuntimeName;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** The declared dims of an input (numbers, or names of symbolic axes), when known. */
  inputDims(name: string): readonly (number | string)[] | undefined;
  /**
   * A float32 tensor of this session's runtime over `data` (not copied). Feeds made here
   * go to {@linkcode run} as they are; other feeds are wrapped on each call.
   */
  tensor(data: Float32Array, dims: readonly number[]): RuntimeTensor;
  /**
   * Runs the graph; outputs are on the CPU.
   *
   * @throws {TypeError} when a plain feed is not float32.
   */
  run(
    feeds: Readonly<Record<string, RuntimeTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, RuntimeTensor>>;
  /** Frees the native or GPU memory. */
  release(): Promise<void>;
}

/** A session with the provider it runs on. */
export interface OpenedSession {
  readonly session: RuntimeSession;
  readonly provider: ExecutionProvider;
  readonly threads: number;
  /** The GPU adapter of a `webgpu` session (Deno's view of it). */
  readonly adapter?: AdapterInfo;
}

/** The CPU's logical core count, as ONNX Runtime's default thread pool would see it. */
export function cpuCount(): number {
  return navigator.hardwareConcurrency || 1;
}

/** What both runtimes' modules offer (the same onnxruntime-common API, separate classes). */
interface OrtModule {
  readonly Tensor: typeof ort.Tensor;
  readonly InferenceSession: typeof ort.InferenceSession;
}

class OrtSession implements RuntimeSession {
  readonly runtime: OnnxRuntimeName;
  #session: ort.InferenceSession;
  #Tensor: typeof ort.Tensor;

  constructor(runtime: OnnxRuntimeName, module: OrtModule, session: ort.InferenceSession) {
    this.runtime = runtime;
    this.#Tensor = module.Tensor;
    this.#session = session;
  }

  get inputNames(): readonly string[] {
    return this.#session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.#session.outputNames;
  }

  inputDims(name: string): readonly (number | string)[] | undefined {
    const meta = this.#session.inputMetadata?.find((m) => m.name === name);
    return meta !== undefined && meta.isTensor ? meta.shape : undefined;
  }

  tensor(data: Float32Array, dims: readonly number[]): RuntimeTensor {
    return new this.#Tensor("float32", data, dims);
  }

  async run(
    feeds: Readonly<Record<string, RuntimeTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, RuntimeTensor>> {
    const own: Record<string, ort.Tensor> = {};
    for (const name in feeds) {
      const t = feeds[name]!;
      if (t instanceof this.#Tensor) own[name] = t;
      else if (t.data instanceof Float32Array) {
        own[name] = new this.#Tensor("float32", t.data, t.dims);
      } else {
        throw new TypeError(`Cannot feed "${name}" of type ${t.type}: expected float32`);
      }
    }
    return outputs === undefined
      ? await this.#session.run(own)
      : await this.#session.run(own, outputs);
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}

const NODE: OrtModule = ort;

let web: Promise<OrtModule> | undefined;
/** Why onnxruntime-node's WebGPU found no adapter, once it did not: not asked again. */
let nodeWebGpuRefused: string | undefined;

/** The first line of ONNX Runtime's error, without its source location and check. */
function reasonOf(e: unknown): string {
  const line = errorMessage(e).split("\n")[0] ?? String(e);
  return /was false\. (.*)$/.exec(line)?.[1] ?? line;
}

/** onnxruntime-web's WebGPU build, imported on first use. */
function webRuntime(): Promise<OrtModule> {
  web ??= import("onnxruntime-web/webgpu").then((m) => {
    // Its CPU kernels (for nodes WebGPU does not take) run in wasm: one thread, since
    // Deno's workers refuse the `blob:` URLs Emscripten starts its threads from.
    m.env.wasm.numThreads = 1;
    return m as unknown as OrtModule;
  });
  return web;
}

/**
 * Opens a session on the first provider of the list that works; logs each failure and
 * the provider finally used (a warning when it is not the first asked for).
 *
 * @throws {Error} when even the CPU provider cannot load the model (a broken graph); the
 * message names the model and ONNX Runtime's reason.
 */
export async function createSession(
  model: Uint8Array | string,
  options: SessionOptions = {},
): Promise<OpenedSession> {
  const wanted = [...(options.executionProviders ?? ["cpu"])];
  if (!wanted.includes("cpu") && options.cpuLast !== false) wanted.push("cpu");
  const threads = options.intraOpThreads ?? cpuCount();
  const name = options.name ?? (typeof model === "string" ? model : "model");
  const bundled = new Map(ort.listSupportedBackends().map((b) => [b.name, b.bundled]));
  const skipped: string[] = [];
  const gpuLog = options.gpuLogSeverity ?? 4;
  const sessionOptions = (provider: ExecutionProvider): ort.InferenceSession.SessionOptions => ({
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    ...(provider === "cpu" ? {} : { logSeverityLevel: gpuLog }),
  });
  const opened = (
    runtime: OnnxRuntimeName,
    module: OrtModule,
    session: ort.InferenceSession,
    provider: ExecutionProvider,
    adapter?: AdapterInfo,
  ): OpenedSession => {
    if (skipped.length > 0) {
      // Only onnxruntime-node's own WebGPU skipped, for onnxruntime-web's: no fallback.
      const level = provider === wanted[0] ? "info" : "warn";
      options.logger?.[level](`execution provider fallback for ${name}`, {
        using: provider,
        skipped: skipped.join("; "),
      });
    }
    options.logger?.info(`onnxruntime session ready`, {
      model: name,
      provider,
      runtime,
      ...(adapter ? { adapter: describeAdapter(adapter) } : { threads }),
    });
    return {
      session: new OrtSession(runtime, module, session),
      provider,
      threads,
      ...(adapter ? { adapter } : {}),
    };
  };
  for (const provider of wanted) {
    if (provider === "webgpu") {
      const probe = await webGpuAdapter();
      const adapter = probe.ok ? probe.adapter : undefined;
      if (nodeWebGpuRefused !== undefined) {
        skipped.push(`webgpu in onnxruntime-node (${nodeWebGpuRefused})`);
      } else if (bundled.has("webgpu")) {
        try {
          const s = await ort.InferenceSession.create(
            model as Uint8Array,
            sessionOptions(provider),
          );
          return opened("onnxruntime-node", NODE, s, provider, adapter);
        } catch (e) {
          const reason = reasonOf(e);
          // Dawn looks for its adapter once per process: no need to ask again.
          if (/adapter/i.test(reason)) nodeWebGpuRefused = reason;
          skipped.push(`webgpu in onnxruntime-node (${reason})`);
        }
      }
      if (!probe.ok) {
        skipped.push(`webgpu (${probe.reason})`);
        continue;
      }
      try {
        const module = await webRuntime();
        const bytes = typeof model === "string" ? await Deno.readFile(model) : model;
        const s = await module.InferenceSession.create(bytes, sessionOptions(provider));
        return opened("onnxruntime-web", module, s, provider, adapter);
      } catch (e) {
        skipped.push(`webgpu in onnxruntime-web (${reasonOf(e)})`);
      }
      continue;
    }
    if (provider !== "cpu" && !bundled.has(provider)) {
      skipped.push(`${provider} (not built into this onnxruntime-node)`);
      continue;
    }
    try {
      const s = await ort.InferenceSession.create(model as Uint8Array, sessionOptions(provider));
      return opened("onnxruntime-node", NODE, s, provider);
    } catch (e) {
      if (provider === "cpu") {
        throw new Error(`Cannot load ONNX model ${name}: ${reasonOf(e)}`, { cause: e });
      }
      skipped.push(`${provider} (${reasonOf(e)})`);
    }
  }
  throw new Error(
    `Cannot load ONNX model ${name}: no execution provider worked (${skipped.join("; ")})`,
  );
}
