/**
 * Whether a WebGPU adapter is here: tests that need one pass `ignore: !HAS_WEBGPU` and are
 * skipped with a message otherwise; under `CI=true` (where `.ci/run` installs
 * `libvulkan1` and `mesa-vulkan-drivers`) a missing adapter fails the run (see
 * `components.ts`).
 *
 * @module
 */
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
