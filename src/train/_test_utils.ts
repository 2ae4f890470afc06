/**
 * Helpers of the training tests (no tests of its own):
 *
 * - a deterministic stand-in for the numerical training step, for the tests of the loop,
 *   the checkpoints and the `train` command. Each step nudges one parameter by the learning
 *   rate and records what it saw, so tests can compare runs batch by batch;
 * - `maxRelativeDiff`, how far one gradient is from a reference;
 * - the reference training quantities of `../shared/fixtures/efficientad-s-train` for the
 *   parity tests (absent on a user's clone: the tests that need them skip with a message).
 *
 * @module
 */
import { join } from "node:path";
import type { Tensor } from "../core/tensor.ts";
import { encodePng } from "../image/decode.ts";
import type {
  OptimizerState,
  StepLosses,
  TeacherNorm,
  TrainBatch,
  TrainSnapshot,
  TrainStep,
  TrainStepFactory,
  TrainStepInit,
} from "./loop.ts";
import type { RawMaps } from "../model/calibration.ts";
import type { StateDict } from "../model/state_dict.ts";
import { fileURLToPath } from "node:url";
import { readNpy } from "../core/npy.ts";
import { resolveConfig } from "../model/config.ts";
import { readTorchCheckpoint } from "../model/torch_checkpoint.ts";
import type { AugmentKind } from "./augment.ts";

/** What a stub step saw in one batch. */
export interface SeenBatch {
  readonly step: number;
  readonly lr: number;
  readonly image: number;
  readonly penalty: number | undefined;
  readonly kind: string;
  readonly factor: number;
}

function checksum(t: Tensor): number {
  let s = 0;
  for (let i = 0; i < t.data.length; i += 97) s += t.data[i]! * ((i % 13) + 1);
  return Math.fround(s);
}

function copyDict(d: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  return new Map([...d].map(([k, v]) => [k, { shape: [...v.shape], data: v.data.slice() }]));
}

/** The stub; `seen` lists the batches of this instance. */
export class StubStep implements TrainStep {
  readonly seen: SeenBatch[] = [];
  norm: TeacherNorm | undefined;
  disposed = false;
  readonly #params: StateDict;
  #steps: number;
  readonly #m: Map<string, Tensor>;
  #random: number;
  readonly #channels: number;
  /** Throw from `step` at this 0-based step (tests of failures). */
  failAt: number | undefined;
  /** Called after each step (tests abort from here). */
  afterStep: ((step: number) => void) | undefined;

  /** Starts from `init` (params copied). */
  constructor(init: TrainStepInit) {
    this.#params = copyDict(init.params);
    this.#steps = init.optimizer?.steps ?? 0;
    this.#m = copyDict(
      init.optimizer?.m ??
        new Map([["student.conv1.bias", { shape: [2], data: new Float32Array(2) }]]),
    );
    this.#random = init.random ?? init.seed;
    this.#channels = init.config.teacherOutChannels;
  }

  teacherFeatures(image: Tensor): Promise<Tensor> {
    const c = this.#channels;
    const data = new Float32Array(c * 4);
    const base = checksum(image);
    for (let i = 0; i < data.length; i++) data[i] = base * ((i % 7) + 1) + i / data.length;
    return Promise.resolve({ shape: [1, c, 2, 2], data });
  }

  setTeacherNorm(norm: TeacherNorm): void {
    this.norm = norm;
  }

  step(batch: TrainBatch): Promise<StepLosses> {
    if (this.failAt === batch.step) return Promise.reject(new Error("stub failure"));
    this.seen.push({
      step: batch.step,
      lr: batch.lr,
      image: checksum(batch.image),
      penalty: batch.penalty ? checksum(batch.penalty) : undefined,
      kind: batch.augmentation.kind,
      factor: batch.augmentation.factor,
    });
    const p = this.#params.get("student.conv1.bias");
    if (p) p.data[0] = Math.fround(p.data[0]! + batch.lr);
    const m = this.#m.get("student.conv1.bias");
    if (m) m.data[1] = Math.fround(m.data[1]! + 1);
    this.#steps++;
    this.#random = (this.#random * 31 + 7) >>> 0;
    this.afterStep?.(batch.step);
    const v = 1 / (batch.step + 1);
    return Promise.resolve({ lossSt: v, lossAe: v / 2, lossStae: v / 4, loss: v * 1.75 });
  }

  maps(image: Tensor): Promise<RawMaps> {
    const [, , h = 1, w = 1] = image.shape;
    const st = new Float32Array(h * w);
    const ae = new Float32Array(h * w);
    for (let i = 0; i < st.length; i++) {
      st[i] = image.data[i]!;
      ae[i] = image.data[st.length + i]! * 2;
    }
    return Promise.resolve({
      st: { shape: [1, 1, h, w], data: st },
      ae: { shape: [1, 1, h, w], data: ae },
    });
  }

  snapshot(): Promise<TrainSnapshot> {
    const optimizer: OptimizerState = {
      steps: this.#steps,
      m: copyDict(this.#m),
      v: copyDict(this.#m),
    };
    return Promise.resolve({ params: copyDict(this.#params), optimizer, random: this.#random });
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.disposed = true;
    return Promise.resolve();
  }
}

/** A factory that records the steps it made. */
export function stubFactory(made: StubStep[] = []): TrainStepFactory {
  return (init) => {
    const s = new StubStep(init);
    made.push(s);
    return Promise.resolve(s);
  };
}

/** Writes `count` w x h PNGs with distinct content; returns their paths. */
export async function writePngs(
  dir: string,
  count: number,
  size: { width: number; height: number; prefix?: string },
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const { width, height } = size;
    const data = new Uint8Array(width * height * 3);
    for (let p = 0; p < data.length; p++) data[p] = (p * 7 + i * 31) % 256;
    const path = join(dir, `${size.prefix ?? ""}${String(i).padStart(3, "0")}.png`);
    await Deno.writeFile(path, encodePng({ width, height, data }));
    paths.push(path);
  }
  return paths;
}

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

/** The largest absolute difference of `a` from `b`, over `b`'s largest magnitude (1 if 0). */
export function maxRelativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}
