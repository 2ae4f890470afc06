import { assertEquals, assertOk } from "../../../tests/assert.ts";
import { evalWithoutVulkanDriver, HAS_WEBGPU } from "../../../tests/support/webgpu.ts";
import {
  describeAdapter,
  type GpuLike,
  hasVulkanLoader,
  NO_VULKAN_DRIVER,
  NO_VULKAN_LOADER,
  probeWebGpu,
} from "./adapter.ts";

const NO_ADAPTER: GpuLike = { requestAdapter: () => Promise.resolve(null) };

Deno.test({
  name: "probeWebGpu() reports this machine's adapter with its fp16 support",
  ignore: !HAS_WEBGPU,
  async fn() {
    const probe = await probeWebGpu();
    assertOk(probe.ok, probe.ok ? "" : probe.reason);
    assertEquals(typeof probe.adapter.shaderF16, "boolean");
    assertOk(describeAdapter(probe.adapter).length > 0);
  },
});

Deno.test("probeWebGpu() without a Vulkan loader says to install libvulkan1", async () => {
  const probe = await probeWebGpu({ gpu: NO_ADAPTER, vulkanLoader: () => Promise.resolve(false) });
  assertEquals(probe, { ok: false, reason: NO_VULKAN_LOADER });
});

Deno.test("probeWebGpu() with a loader but no driver says which drivers to install", async () => {
  const probe = await probeWebGpu({ gpu: NO_ADAPTER, vulkanLoader: () => Promise.resolve(true) });
  assertEquals(probe, { ok: false, reason: NO_VULKAN_DRIVER });
});

Deno.test("probeWebGpu() names a failed adapter request and a missing navigator.gpu", async () => {
  const failing: GpuLike = { requestAdapter: () => Promise.reject(new Error("no backend")) };
  const probe = await probeWebGpu({ gpu: failing, vulkanLoader: () => Promise.resolve(true) });
  assertEquals(probe, { ok: false, reason: "the WebGPU adapter request failed: no backend" });
  const missing = await probeWebGpu({ gpu: null });
  assertOk(!missing.ok && missing.reason.includes("navigator.gpu is missing"));
});

Deno.test("hasVulkanLoader() finds libvulkan.so.1 where WebGPU found an adapter", {
  ignore: !HAS_WEBGPU || Deno.build.os !== "linux",
}, async () => {
  assertEquals(await hasVulkanLoader(), true);
});

Deno.test({
  name: "probeWebGpu() in a process whose Vulkan has no driver reports no driver",
  ignore: !HAS_WEBGPU || Deno.build.os !== "linux",
  async fn() {
    const code =
      `import { probeWebGpu } from ${JSON.stringify(import.meta.resolve("./adapter.ts"))};` +
      `console.log(JSON.stringify(await probeWebGpu()));`;
    const { lines } = await evalWithoutVulkanDriver(code);
    assertEquals(JSON.parse(lines.at(-1) ?? ""), { ok: false, reason: NO_VULKAN_DRIVER });
  },
});
