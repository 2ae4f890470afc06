/**
 * Asks Deno's WebGPU (`navigator.gpu`) for an adapter and a device and says what it found:
 * the adapter's vendor, device and `shader-f16` support, or, when there is none, why, in
 * words a person can act on ("no Vulkan loader: install libvulkan1").
 *
 * @example
 * ```ts ignore
 * import { describeAdapter, probeWebGpu } from "./adapter.ts";
 *
 * const probe = await probeWebGpu();
 * console.log(probe.ok ? describeAdapter(probe.adapter) : probe.reason);
 * ```
 *
 * @module
 */
import { errorMessage } from "../../core/errors.ts";

/** What the adapter says about itself (strings may be empty: software adapters leave some blank). */
export interface AdapterInfo {
  /** PCI vendor id or name, as the adapter reports it (`"65541"` is Mesa's 0x10005). */
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  /** The driver's name for the device: `llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`. */
  readonly description: string;
  /** Whether the adapter has the `shader-f16` feature (half-precision shaders). */
  readonly shaderF16: boolean;
}

/** The outcome of {@linkcode probeWebGpu}: an adapter, or why there is none. */
export type AdapterProbe =
  | { readonly ok: true; readonly adapter: AdapterInfo }
  | { readonly ok: false; readonly reason: string };

/** The part of `navigator.gpu` the probe uses. */
export interface GpuLike {
  requestAdapter(): Promise<GPUAdapter | null>;
}

/** Options of {@linkcode probeWebGpu}: the lookups, replaceable for tests. */
export interface ProbeOptions {
  /** The WebGPU entry point; `null` when the runtime has none. Default `navigator.gpu`. */
  readonly gpu?: GpuLike | null;
  /**
   * Whether the Vulkan loader (`libvulkan.so.1`) is installed; `undefined` when this cannot
   * be told (not Linux, no read permission). Default {@linkcode hasVulkanLoader}.
   */
  readonly vulkanLoader?: () => Promise<boolean | undefined>;
}

/** The advice when the Vulkan loader is missing. */
export const NO_VULKAN_LOADER = "no Vulkan loader: install libvulkan1";
/** The advice when the loader finds no driver for any GPU. */
export const NO_VULKAN_DRIVER =
  "no Vulkan driver: install mesa-vulkan-drivers, or the NVIDIA driver";

/** Folders the dynamic linker searches for `libvulkan.so.1` besides `LD_LIBRARY_PATH`. */
const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu/tegra",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
  "/usr/local/lib",
];

/**
 * Whether `libvulkan.so.1` is in `LD_LIBRARY_PATH` or a usual library folder. Returns
 * `undefined` off Linux (where WebGPU uses Metal or Direct3D) or when the folders cannot
 * be read; never throws.
 */
export async function hasVulkanLoader(): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  let extra: string[] = [];
  try {
    extra = (Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":").filter((d) => d !== "");
  } catch {
    // no --allow-env: the usual folders only
  }
  let readable = false;
  for (const dir of [...extra, ...LIBRARY_DIRS]) {
    try {
      await Deno.stat(`${dir}/libvulkan.so.1`);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) readable = true;
    }
  }
  return readable ? false : undefined;
}

/**
 * Asks for an adapter and a device (the device is destroyed again: this only looks).
 * Never throws: every failure becomes `{ ok: false, reason }`.
 */
export async function probeWebGpu(options: ProbeOptions = {}): Promise<AdapterProbe> {
  const gpu = options.gpu === undefined ? defaultGpu() : options.gpu;
  if (gpu === null) {
    return { ok: false, reason: "this Deno has no WebGPU (navigator.gpu is missing)" };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    const loader = await (options.vulkanLoader ?? hasVulkanLoader)();
    if (loader === false) return { ok: false, reason: NO_VULKAN_LOADER };
    return { ok: false, reason: `the WebGPU adapter request failed: ${errorMessage(e)}` };
  }
  if (adapter === null) {
    const loader = await (options.vulkanLoader ?? hasVulkanLoader)();
    if (loader === false) return { ok: false, reason: NO_VULKAN_LOADER };
    if (loader === true) return { ok: false, reason: NO_VULKAN_DRIVER };
    return { ok: false, reason: "no WebGPU adapter: no GPU driver that WebGPU can use" };
  }
  try {
    const device = await adapter.requestDevice();
    device.destroy();
  } catch (e) {
    return { ok: false, reason: `the WebGPU device request failed: ${errorMessage(e)}` };
  }
  const info = adapter.info;
  return {
    ok: true,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      shaderF16: adapter.features.has("shader-f16"),
    },
  };
}

function defaultGpu(): GpuLike | null {
  return "gpu" in navigator && navigator.gpu ? navigator.gpu : null;
}

let cached: Promise<AdapterProbe> | undefined;

/** {@linkcode probeWebGpu} with the default lookups, run once per process. */
export function webGpuAdapter(): Promise<AdapterProbe> {
  cached ??= probeWebGpu();
  return cached;
}

/**
 * The adapter in a few words, for log lines and `/status`:
 * `llvmpipe (LLVM 15.0.6, 256 bits), vendor 0x10005, fp16`.
 *
 * @example
 * ```ts
 * import { describeAdapter } from "./adapter.ts";
 *
 * const text = describeAdapter({
 *   vendor: "65541",
 *   architecture: "",
 *   device: "0",
 *   description: "llvmpipe (LLVM 15.0.6, 256 bits)",
 *   shaderF16: true,
 * });
 * if (text !== "llvmpipe (LLVM 15.0.6, 256 bits), vendor 0x10005, fp16") throw new Error(text);
 * ```
 */
export function describeAdapter(a: AdapterInfo): string {
  const vendor = /^\d+$/.test(a.vendor) ? `0x${Number(a.vendor).toString(16)}` : a.vendor;
  const parts = [
    a.description || a.device || "unnamed adapter",
    ...(vendor ? [`vendor ${vendor}`] : []),
    ...(a.architecture ? [a.architecture] : []),
    a.shaderF16 ? "fp16" : "no fp16",
  ];
  return parts.join(", ");
}
