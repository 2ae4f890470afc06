/**
 * Helpers for the tests of `src/retrain/` (not imported by non-test code).
 *
 * @module
 */
import { join } from "node:path";
import type { Frame } from "../core/frame.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";
import { FrameStore, type FrameStoreOptions } from "./frame_store.ts";

/**
 * Trigger settings as a pipeline file resolves them: every trigger off and the file's
 * default cooldown (10 minutes), with `over` on top.
 */
export function triggerSettings(
  over: Partial<ResolvedRetrainTriggers> = {},
): ResolvedRetrainTriggers {
  return {
    intervalMs: null,
    dailyAt: [],
    timeZone: "utc",
    minNewFrames: null,
    drift: null,
    cooldownMs: 600_000,
    ...over,
  };
}

/**
 * A `size` x `size` frame of camera `cam` captured at `1000 + seq`: a diagonal ramp, with
 * `paint(x, y)` (a grey level) where it returns one.
 */
export function rampFrame(
  seq: number,
  size = 32,
  paint?: (x: number, y: number) => number | undefined,
): Frame {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = paint?.(x, y) ?? (x + y) % 200;
      rgb.fill(v, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  return { camera: "cam", seq, capturedAt: 1000 + seq, width: size, height: size, rgb };
}

/** A frame store in a temporary folder, removed on disposal. */
export async function tempStore(
  options: FrameStoreOptions = {},
): Promise<{ dir: string; store: FrameStore } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "retrain_store_" });
  const store = await FrameStore.open(join(dir, "frames"), options);
  return {
    dir,
    store,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
