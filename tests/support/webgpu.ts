/**
 * Whether a WebGPU adapter is here: tests that need one pass `ignore: !HAS_WEBGPU` and are
 * skipped with a message otherwise; under `CI=true` (where `.ci/run` installs
 * `libvulkan1` and `mesa-vulkan-drivers`) a missing adapter fails the run (see
 * `components.ts`).
 *
 * When there is an adapter, loading this module also opens and releases one tiny
 * onnxruntime-web session: the runtime's one-time start (its wasm instance, and a message
 * port it keeps for the life of the process) then happens outside any test, where Deno's
 * resource sanitizer would count it as a leak.
 *
 * @module
 */
import type { Tensor } from "../../src/core/tensor.ts";
import { GraphBuilder } from "../../src/infer/onnx/graph_builder.ts";
import { createSession } from "../../src/infer/onnx/session.ts";
import { probeWebGpu } from "../../src/infer/webgpu/adapter.ts";
import { component } from "./components.ts";

const probe = await probeWebGpu();

/**
 * True when `navigator.gpu` gives an adapter and a device (checked once, when this module
 * loads).
 *
 * @throws {Error} under `CI=true` when it does not.
 */
export const HAS_WEBGPU: boolean = component("a WebGPU adapter", probe.ok, {
  why: probe.ok ? "" : probe.reason,
});

if (HAS_WEBGPU) {
  const g = new GraphBuilder();
  g.node("Relu", [g.input("x", [1, 4])], {}, "y");
  g.output("y", [1, 4]);
  const opened = await createSession(g.encode({ opset: 17, producer: "webgpu-warmup" }), {
    executionProviders: ["webgpu"],
  });
  await opened.session.release();
}

/** A deterministic pseudo-random image `[1, 3, h, w]` in [0, 1), for the WebGPU parity tests. */
export function randomImage(h: number, w: number, seed: number): Tensor {
  const data = new Float32Array(3 * h * w);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 32;
  }
  return { shape: [1, 3, h, w], data };
}

/**
 * Runs `code` with `deno eval` in a process whose Vulkan has no driver: Vulkan only (Deno
 * would fall back to OpenGL otherwise) with an ICD list that names none. Returns its exit
 * status and output lines.
 */
export async function evalWithoutVulkanDriver(
  code: string,
): Promise<{ success: boolean; lines: string[]; stderr: string }> {
  const empty = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(empty, "{}");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      env: { DENO_WEBGPU_BACKEND: "vulkan", VK_ICD_FILENAMES: empty, VK_DRIVER_FILES: empty },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      success: out.success,
      lines: new TextDecoder().decode(out.stdout).trim().split("\n"),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    await Deno.remove(empty);
  }
}
