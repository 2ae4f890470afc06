/**
 * Shared helpers of the training parity tests (no tests of its own): the reference
 * training quantities of `../shared/fixtures/efficientad-s-train` (absent on a user's
 * clone: the tests that need them skip with a message).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { readNpy } from "../core/npy.ts";
import type { Tensor } from "../core/tensor.ts";
import { resolveConfig } from "../model/config.ts";
import type { StateDict } from "../model/state_dict.ts";
import { readTorchCheckpoint } from "../model/torch_checkpoint.ts";
import type { AugmentKind } from "./augment.ts";

/** `../shared/fixtures/efficientad-s-train/`. */
export const TRAIN_DIR = fileURLToPath(
  new URL("../../../shared/fixtures/efficientad-s-train/", import.meta.url),
);
/** `../shared/fixtures/efficientad-s/`. */
export const MODEL_DIR = fileURLToPath(
  new URL("../../../shared/fixtures/efficientad-s/", import.meta.url),
);

/** Whether the training fixture and its model are present. */
export const HAS_TRAIN_FIXTURE = (() => {
  try {
    return Deno.statSync(`${TRAIN_DIR}losses.json`).isFile &&
      Deno.statSync(`${MODEL_DIR}model.pth`).isFile;
  } catch {
    return false;
  }
})();
if (!HAS_TRAIN_FIXTURE) {
  console.warn(
    "../shared/fixtures/efficientad-s-train is absent: training parity tests are skipped",
  );
}

/** The fixture's config: size S, no padding, padded maps, 256 x 256. */
export const FIXTURE_CONFIG = resolveConfig({
  size: "s",
  teacherOutChannels: 384,
  padding: false,
  padMaps: true,
  imageSize: [256, 256],
});

/** One augmentation case of losses.json. */
export interface LossCase {
  factor: number;
  loss_st: number;
  loss_ae: number;
  loss_stae: number;
  loss: number;
  grad_norms: Record<string, number>;
  delta_abs_sum: Record<string, number>;
}

/** losses.json. */
export type LossesJson = Record<AugmentKind, LossCase> & {
  quantiles_over_input: { qa_st: number; qb_st: number; qa_ae: number; qb_ae: number };
};

/** Reads losses.json. */
export async function readLossesJson(): Promise<LossesJson> {
  return JSON.parse(await Deno.readTextFile(`${TRAIN_DIR}losses.json`)) as LossesJson;
}

/** Reads an npy of the training fixture. */
export function readTrainNpy(name: string): Promise<Tensor> {
  return readNpy(`${TRAIN_DIR}${name}`);
}

/** Reads the model's state dict. */
export function readModelDict(): Promise<StateDict> {
  return readTorchCheckpoint(`${MODEL_DIR}model.pth`);
}

/** One NCHW image (item `index` of the batch) as channels-last H x W x C values. */
export function imageToHwc(t: Tensor, index = 0): Float32Array {
  const [, c = 0, h = 0, w = 0] = t.shape;
  const out = new Float32Array(h * w * c);
  const base = index * c * h * w;
  for (let k = 0; k < c; k++) {
    for (let p = 0; p < h * w; p++) out[p * c + k] = t.data[base + k * h * w + p]!;
  }
  return out;
}
