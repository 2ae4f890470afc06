/**
 * Penalty images, as anomalib prepares them for the student's penalty loss: a natural
 * image (ImageNet / Imagenette, not the product) resized to twice the training size
 * (bilinear, no antialias), turned greyscale with probability 0.3 (three equal channels,
 * weights 0.299 / 0.587 / 0.114), then centre-cropped to the training size.
 *
 * @module
 */
import { InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { formatShape } from "../core/tensor.ts";
import { resizeBilinear } from "../image/resize.ts";
import { imageToTensor, readImage } from "../image/decode.ts";
import { deriveSeed, EpochSampler, listImages, type SamplerState, SeededRandom } from "./data.ts";

/** Probability that a penalty image is turned greyscale (torchvision `RandomGrayscale(0.3)`). */
export const GREYSCALE_PROBABILITY = 0.3;

const f32 = Math.fround;
const WR = f32(0.299);
const WG = f32(0.587);
const WB = f32(0.114);

function dims(t: Tensor, action: string): [number, number] {
  const [n, c, h, w] = t.shape;
  if (t.shape.length !== 4 || n !== 1 || c !== 3 || h === undefined || w === undefined) {
    throw new RangeError(
      `Cannot ${action} a tensor of shape ${formatShape(t.shape)}: expected [1, 3, H, W]`,
    );
  }
  return [h, w];
}

/**
 * The greyscale of a 1 x 3 x H x W image in three equal channels:
 * `0.299 R + 0.587 G + 0.114 B` in float32.
 *
 * @throws {RangeError} when the shape is not 1 x 3 x H x W.
 */
export function toGreyscale(t: Tensor): Tensor {
  const [h, w] = dims(t, "greyscale");
  const plane = h * w;
  const out = new Float32Array(3 * plane);
  const d = t.data;
  for (let p = 0; p < plane; p++) {
    const g = f32(f32(f32(WR * d[p]!) + f32(WG * d[plane + p]!)) + f32(WB * d[2 * plane + p]!));
    out[p] = g;
    out[plane + p] = g;
    out[2 * plane + p] = g;
  }
  return { shape: [1, 3, h, w], data: out };
}

/**
 * The centre `size` (height, width) crop of a 1 x 3 x H x W image, placed as torchvision's
 * `CenterCrop` does: top = round((H - h) / 2), left = round((W - w) / 2).
 *
 * @throws {RangeError} when the crop is larger than the image or the shape is wrong.
 */
export function centreCrop(t: Tensor, size: readonly [number, number]): Tensor {
  const [h, w] = dims(t, "crop");
  const [ch, cw] = size;
  if (ch > h || cw > w || ch < 1 || cw < 1) {
    throw new RangeError(`Cannot crop ${ch}x${cw} from a ${h}x${w} image`);
  }
  const top = Math.round((h - ch) / 2);
  const left = Math.round((w - cw) / 2);
  const out = new Float32Array(3 * ch * cw);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < ch; y++) {
      const from = c * h * w + (top + y) * w + left;
      out.set(t.data.subarray(from, from + cw), (c * ch + y) * cw);
    }
  }
  return { shape: [1, 3, ch, cw], data: out };
}

/**
 * anomalib's penalty transform on a decoded 1 x 3 x H x W image in [0, 1]: resize to
 * twice `size`, greyscale when `random()` < 0.3 (one draw per image), centre-crop to `size`.
 *
 * @throws {RangeError} when the shape is not 1 x 3 x H x W.
 */
export function penaltyTransform(
  image: Tensor,
  size: readonly [number, number],
  random: () => number,
): Tensor {
  dims(image, "transform");
  let t = resizeBilinear(image, [size[0] * 2, size[1] * 2]);
  if (random() < GREYSCALE_PROBABILITY) t = toGreyscale(t);
  return centreCrop(t, size);
}

/** What a {@linkcode PenaltyImages} saves in a checkpoint to continue exactly. */
export interface PenaltyState {
  readonly sampler: SamplerState;
  readonly random: number;
}

/** Options of {@linkcode PenaltyImages.open}. */
export interface PenaltyImagesOptions {
  /** Seed of the order and of the greyscale draws. Default 0. */
  readonly seed?: number;
  /** Continue from a saved state. */
  readonly state?: PenaltyState;
}

/**
 * An endless seeded stream of penalty images from a folder of natural images, shuffled
 * epoch by epoch. Images are decoded on each use (a few milliseconds, small against a
 * training step), so memory stays flat whatever the folder's size.
 */
export class PenaltyImages {
  readonly #paths: readonly string[];
  readonly #size: readonly [number, number];
  readonly #sampler: EpochSampler;
  readonly #random: SeededRandom;

  private constructor(
    paths: readonly string[],
    size: readonly [number, number],
    options: PenaltyImagesOptions,
  ) {
    const seed = options.seed ?? 0;
    this.#paths = paths;
    this.#size = size;
    this.#sampler = new EpochSampler(paths.length, deriveSeed(seed, 101), options.state?.sampler);
    this.#random = options.state
      ? SeededRandom.fromState(options.state.random)
      : new SeededRandom(deriveSeed(seed, 102));
  }

  /**
   * Lists the PNG / JPEG files of `dir`.
   *
   * @throws {InputError} when the folder cannot be listed or holds no images.
   */
  static async open(
    dir: string,
    size: readonly [number, number],
    options: PenaltyImagesOptions = {},
  ): Promise<PenaltyImages> {
    const paths = await listImages(dir);
    if (paths.length === 0) {
      throw new InputError(`Cannot use penalty images from ${dir}: it holds no PNG or JPEG images`);
    }
    return new PenaltyImages(paths, size, options);
  }

  /** How many files. */
  get count(): number {
    return this.#paths.length;
  }

  /**
   * The next penalty image, 1 x 3 x H x W in [0, 1].
   *
   * @throws {InputError} when a file cannot be read or decoded.
   */
  async next(options: { signal?: AbortSignal } = {}): Promise<Tensor> {
    const path = this.#paths[this.#sampler.next()]!;
    const image = await loadImageTensorRaw(path, options.signal);
    return penaltyTransform(image, this.#size, () => this.#random.next());
  }

  /** The state to save. */
  get state(): PenaltyState {
    return { sampler: this.#sampler.state, random: this.#random.state };
  }
}

async function loadImageTensorRaw(path: string, signal: AbortSignal | undefined): Promise<Tensor> {
  return imageToTensor(await readImage(path, signal ? { signal } : {}));
}
