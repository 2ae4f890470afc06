/**
 * Training data: the normal images of a product, read from a plain folder of PNG / JPEG
 * files or from an MVTec-style category (`<root>/train/good`), resized to the training
 * image size with PyTorch's bilinear resize (no antialiasing) and scaled to RGB in [0, 1];
 * a held-out split of normal images for the quantiles and the threshold; and a seeded
 * sampler whose order depends only on the seed, so a resumed run sees the same images.
 *
 * @module
 */
import { listImages } from "../image/list.ts";
import { join } from "node:path";
import { assertPositiveInteger } from "../core/check.ts";
import { InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { imageToTensor, readImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";

/**
 * A small, seedable source of uniform numbers in [0, 1) whose whole state is one 32-bit
 * integer (mulberry32), so it can be saved in a checkpoint and restored exactly.
 */
export class SeededRandom {
  #state: number;

  /** @param seed any integer; the same seed gives the same sequence. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The state to save; {@linkcode SeededRandom.fromState} restores it. */
  get state(): number {
    return this.#state;
  }

  /** A generator continuing from a saved state. */
  static fromState(state: number): SeededRandom {
    const r = new SeededRandom(0);
    r.#state = state >>> 0;
    return r;
  }

  /** The next uniform number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
}

/** Mixes a seed and a stream number into one 32-bit seed (for independent streams). */
export function deriveSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  return h >>> 0;
}

/** A Fisher-Yates shuffle of `0 .. n-1` drawn from `random`. */
export function permutation(n: number, random: SeededRandom): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Where an {@linkcode EpochSampler} stands: the epoch and the position within it. */
export interface SamplerState {
  readonly epoch: number;
  readonly position: number;
}

/**
 * Draws indices `0 .. n-1` epoch by epoch, each epoch a fresh permutation seeded by
 * (seed, epoch), as a shuffling data loader does. The order depends only on the seed, and
 * the state is two integers, so a resumed run continues the same order.
 */
export class EpochSampler {
  readonly #n: number;
  readonly #seed: number;
  #epoch: number;
  #position: number;
  #order: number[];

  /**
   * @param n how many items; at least 1.
   * @throws {RangeError} when `n` is not a positive integer or the state is out of range.
   */
  constructor(n: number, seed: number, state: SamplerState = { epoch: 0, position: 0 }) {
    assertPositiveInteger(n, "item count", "Cannot sample");
    if (state.epoch < 0 || state.position < 0 || state.position > n) {
      throw new RangeError(
        `Cannot restore sampler state epoch ${state.epoch} position ${state.position} for ${n} items`,
      );
    }
    this.#n = n;
    this.#seed = seed;
    this.#epoch = state.epoch;
    this.#position = state.position;
    this.#order = this.#orderOf(state.epoch);
  }

  #orderOf(epoch: number): number[] {
    return permutation(this.#n, new SeededRandom(deriveSeed(this.#seed, epoch + 1)));
  }

  /** The next index. */
  next(): number {
    if (this.#position >= this.#n) {
      this.#epoch++;
      this.#position = 0;
      this.#order = this.#orderOf(this.#epoch);
    }
    return this.#order[this.#position++]!;
  }

  /** The state to save (restore it with the constructor's `state`). */
  get state(): SamplerState {
    return { epoch: this.#epoch, position: this.#position };
  }
}

/** How the calibration images (quantiles, threshold) are chosen. */
export type CalibrationSource = "split" | "test-good";

/** The share of the normal images held out for calibration by default (`split`). */
export const DEFAULT_HOLDOUT = 0.1;

/** Options of {@linkcode findTrainingData}. */
export interface TrainingDataOptions {
  /**
   * `split` (default): hold out `holdout` of the normal training images; `test-good`: use
   * an MVTec category's `test/good` images (anomalib's choice) and train on all of
   * `train/good`.
   */
  readonly calibration?: CalibrationSource;
  /** Fraction of the normal images held out for calibration with `split`. Default {@linkcode DEFAULT_HOLDOUT}. */
  readonly holdout?: number;
  /** Seed of the split. Default 0. */
  readonly seed?: number;
}

/** The image files of a training run. */
export interface TrainingData {
  /** The folder given. */
  readonly root: string;
  /** `mvtec` when `root/train/good` exists, else `folder`. */
  readonly layout: "mvtec" | "folder";
  /** Images the model trains on, in name order. */
  readonly train: readonly string[];
  /** Normal images for the quantiles and threshold, in name order. */
  readonly calibration: readonly string[];
  /** How `calibration` was chosen. */
  readonly calibrationSource: CalibrationSource;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}

/**
 * Lists the training and calibration images under `root`: an MVTec-style category when
 * `root/train/good` exists, otherwise every PNG / JPEG directly in `root`.
 *
 * With `split`, a seeded shuffle picks `max(1, round(n * holdout))` images for calibration
 * and leaves the rest for training (at least one each, so two images at least).
 *
 * @throws {InputError} when `root` is not a folder, holds no images, has too few images
 * for the split, `holdout` is outside [0, 1), or `test-good` is asked of a plain folder
 * or a category without `test/good` images.
 */
export async function findTrainingData(
  root: string,
  options: TrainingDataOptions = {},
): Promise<TrainingData> {
  const source = options.calibration ?? "split";
  const holdout = options.holdout ?? DEFAULT_HOLDOUT;
  if (!(holdout >= 0 && holdout < 1)) {
    throw new InputError(`Cannot use holdout ${holdout}: expected a fraction in [0, 1)`);
  }
  if (!await isDirectory(root)) {
    throw new InputError(`Cannot read training data ${root}: not a folder`);
  }
  const goodDir = join(root, "train", "good");
  const layout = await isDirectory(goodDir) ? "mvtec" : "folder";
  const images = await listImages(layout === "mvtec" ? goodDir : root);
  if (images.length === 0) {
    throw new InputError(
      `Cannot read training data ${root}: no PNG or JPEG images in ${
        layout === "mvtec" ? goodDir : "the folder"
      } (expected a folder of normal images or an MVTec-style category with train/good)`,
    );
  }
  if (source === "test-good") {
    const testGood = join(root, "test", "good");
    if (layout !== "mvtec" || !await isDirectory(testGood)) {
      throw new InputError(
        `Cannot calibrate on test/good: ${root} is not an MVTec-style category with test/good`,
      );
    }
    const calibration = await listImages(testGood);
    if (calibration.length === 0) {
      throw new InputError(`Cannot calibrate on test/good: ${testGood} holds no images`);
    }
    return { root, layout, train: images, calibration, calibrationSource: source };
  }
  if (images.length < 2) {
    throw new InputError(
      `Cannot hold out calibration images from ${root}: it has ${images.length} image; ` +
        `at least 2 are needed (or calibrate on test/good)`,
    );
  }
  const count = Math.min(images.length - 1, Math.max(1, Math.round(images.length * holdout)));
  const order = permutation(images.length, new SeededRandom(deriveSeed(options.seed ?? 0, 0)));
  const held = new Set(order.slice(0, count));
  return {
    root,
    layout,
    train: images.filter((_, i) => !held.has(i)),
    calibration: images.filter((_, i) => held.has(i)),
    calibrationSource: source,
  };
}

/** Options of {@linkcode loadImageTensor}. */
export interface LoadImageOptions {
  /** Aborts the file read. */
  readonly signal?: AbortSignal;
}

/**
 * Reads a PNG / JPEG file as a 1 x 3 x H x W tensor in [0, 1] at `size` (height, width),
 * resized with PyTorch's bilinear `F.interpolate` (align_corners false, no antialias).
 * Greyscale files become three equal channels.
 *
 * @throws {InputError} when the file cannot be read or decoded.
 */
export async function loadImageTensor(
  path: string,
  size: readonly [number, number],
  options: LoadImageOptions = {},
): Promise<Tensor> {
  const img = await readImage(path, options.signal ? { signal: options.signal } : {});
  const t = imageToTensor(img);
  return resizeBilinear(t, size);
}

/** Options of {@linkcode ImageSet}. */
export interface ImageSetOptions {
  /** Keep decoded tensors in memory up to this many bytes. Default 2 GiB. */
  readonly cacheBytes?: number;
}

/**
 * A list of image files served as training tensors by index, decoded once and kept in
 * memory while they fit in `cacheBytes` (later images are decoded on every use).
 */
export class ImageSet {
  readonly #cache = new Map<number, Tensor>();
  readonly #cacheBytes: number;
  #cached = 0;

  /**
   * @param paths the image files.
   * @param size the training image size (height, width).
   */
  constructor(
    readonly paths: readonly string[],
    readonly size: readonly [number, number],
    options: ImageSetOptions = {},
  ) {
    this.#cacheBytes = options.cacheBytes ?? 2 * 1024 ** 3;
  }

  /** How many images. */
  get length(): number {
    return this.paths.length;
  }

  /**
   * Image `index` as a 1 x 3 x H x W tensor in [0, 1]. Do not modify it: it may be cached.
   *
   * @throws {RangeError} when the index is out of range; {@linkcode InputError} when the
   * file cannot be read.
   */
  async get(index: number, options: LoadImageOptions = {}): Promise<Tensor> {
    const hit = this.#cache.get(index);
    if (hit !== undefined) return hit;
    const path = this.paths[index];
    if (path === undefined) {
      throw new RangeError(`Cannot get image ${index}: the set has ${this.paths.length}`);
    }
    const t = await loadImageTensor(path, this.size, options);
    const bytes = t.data.byteLength;
    if (this.#cached + bytes <= this.#cacheBytes) {
      this.#cache.set(index, t);
      this.#cached += bytes;
    }
    return t;
  }
}

export { listImages };
