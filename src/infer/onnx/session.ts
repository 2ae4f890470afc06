/**
 * Creates ONNX Runtime sessions with a preference list of execution providers, falling
 * back along the list to CPU, and says which provider it got.
 *
 * @module
 */
import { errorMessage } from "../../core/errors.ts";
import * as ort from "onnxruntime-node";
import type { Logger } from "../../core/log.ts";

/** Execution providers this project knows how to ask onnxruntime-node for. */
export type ExecutionProvider = "tensorrt" | "cuda" | "webgpu" | "cpu";

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
}

/** A session with the provider it runs on. */
export interface OpenedSession {
  readonly session: ort.InferenceSession;
  readonly provider: ExecutionProvider;
  readonly threads: number;
}

/** The CPU's logical core count, as ONNX Runtime's default thread pool would see it. */
export function cpuCount(): number {
  return navigator.hardwareConcurrency || 1;
}

/**
 * Opens a session on the first provider of the list that works; logs each failure and
 * the provider finally used.
 *
 * @throws {Error} when even the CPU provider cannot load the model (a broken graph); the
 * message names the model and ONNX Runtime's reason.
 */
export async function createSession(
  model: Uint8Array | string,
  options: SessionOptions = {},
): Promise<OpenedSession> {
  const wanted = [...(options.executionProviders ?? ["cpu"])];
  if (!wanted.includes("cpu")) wanted.push("cpu");
  const threads = options.intraOpThreads ?? cpuCount();
  const name = options.name ?? (typeof model === "string" ? model : "model");
  const bundled = new Map(ort.listSupportedBackends().map((b) => [b.name, b.bundled]));
  const skipped: string[] = [];
  for (const provider of wanted) {
    if (provider !== "cpu" && !bundled.has(provider)) {
      skipped.push(`${provider} (not built into this onnxruntime-node)`);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(model as Uint8Array, {
        executionProviders: [provider],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: "sequential",
        graphOptimizationLevel: "all",
        // A provider that fails to load is reported by the fallback line below; keep
        // ONNX Runtime's own error dump for it out of the log.
        ...(provider === "cpu" ? {} : { logSeverityLevel: 4 as const }),
      });
      if (skipped.length > 0) {
        options.logger?.warn(`execution provider fallback for ${name}`, {
          using: provider,
          skipped: skipped.join("; "),
        });
      }
      options.logger?.info(`onnxruntime session ready`, { model: name, provider, threads });
      return { session, provider, threads };
    } catch (e) {
      const reason = errorMessage(e).split("\n")[0] ?? String(e);
      if (provider === "cpu") {
        throw new Error(`Cannot load ONNX model ${name}: ${reason}`, { cause: e });
      }
      skipped.push(`${provider} (${reason})`);
    }
  }
  throw new Error(`Cannot load ONNX model ${name}: no execution provider worked`);
}
