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
