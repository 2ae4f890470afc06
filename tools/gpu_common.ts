/**
 * What the GPU tools (`bench_gpu.ts`, `gpu_parity.ts`) share: the input batch, the engine
 * options that ask for WebGPU (and half precision), how to tell what an engine serves, and
 * the adapter Deno's WebGPU finds.
 *
 * @module
 */
import { createLogger, type Logger } from "../src/core/log.ts";
import type { Tensor } from "../src/core/tensor.ts";
import type { InferenceEngine } from "../src/infer/engine.ts";
import type { OnnxEngineOptions } from "../src/infer/onnx/engine.ts";
import type { ExecutionProvider } from "../src/infer/onnx/session.ts";

/** A deterministic N x 3 x 256 x 256 batch in [0, 1). */
export function syntheticBatch(n: number, size: readonly [number, number] = [256, 256]): Tensor {
  const [h, w] = size;
  const data = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
  return { shape: [n, 3, h, w], data };
}

/**
 * Engine options for a provider list, asking for half precision when `fp16` is set
 * (`precision: "fp16"`, served on a WebGPU adapter with `shader-f16` only, which
 * {@linkcode servesFp16} then tells).
 */
export function engineOptions(
  providers: readonly ExecutionProvider[],
  options: { fp16?: boolean; logger?: Logger } = {},
): OnnxEngineOptions {
  return {
    executionProviders: providers,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.fp16 ? { precision: "fp16" as const } : {}),
  };
}

/**
 * Whether an engine says it runs in half precision: its `precision` property is `"fp16"`.
 * (Not its description: the WebGPU engine's names the adapter's `fp16` support there.)
 */
export function servesFp16(engine: InferenceEngine & { precision?: string }): boolean {
  return engine.precision === "fp16";
}

/** A logger to stderr that keeps its warnings (the provider fallback line names the reason). */
export function warningLogger(): { logger: Logger; lastWarning(): string | undefined } {
  const seen: string[] = [];
  const logger = createLogger({
    level: "info",
    sink: (line) => {
      console.error(line);
      if (line.startsWith("warn")) seen.push(line.replace(/^warn\s+/, ""));
    },
  });
  return { logger, lastWarning: () => seen.at(-1) };
}

/** A table cell: `|` escaped, newlines folded, cut to `max` characters. */
export function cell(text: string, max = 200): string {
  const flat = text.replaceAll("|", "\\|").replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** What Deno's `navigator.gpu` finds, in one line (or why it finds nothing). */
export async function describeAdapter(): Promise<string> {
  if (!("gpu" in navigator) || !navigator.gpu) return "no navigator.gpu in this Deno";
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return "no adapter (no Vulkan loader or driver: install libvulkan1 and a driver)";
  const { vendor, architecture, device, description } = adapter.info;
  const named = [vendor, architecture, device, description].filter((s) => s !== "").join(", ");
  const f16 = adapter.features.has("shader-f16") ? "shader-f16" : "no shader-f16";
  const maxBuffer = Math.round(adapter.limits.maxBufferSize / 2 ** 20);
  return `${named || "(adapter info empty)"}; ${f16}; maxBufferSize ${maxBuffer} MiB`;
}
