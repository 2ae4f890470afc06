/**
 * The autoencoder branch's augmentation (SPEC, Training): brightness, contrast or
 * saturation with torchvision's `adjust_*` semantics on float images in [0, 1], in float32
 * arithmetic as torch does it.
 *
 * - greyscale g = 0.2989 R + 0.587 G + 0.114 B;
 * - brightness: clamp(f x);
 * - contrast: clamp(f x + (1 - f) m), m the mean of the greyscale image;
 * - saturation: clamp(f x + (1 - f) g);
 *
 * clamped to [0, 1]. Images are channels-last RGB (H x W x 3, as tfjs's NHWC batches hold
 * them), one image at a time.
 *
 * @module
 */

/** The three augmentations anomalib chooses from. */
export type AugmentKind = "brightness" | "contrast" | "saturation";

/** Every augmentation kind, in anomalib's order. */
export const AUGMENT_KINDS: readonly AugmentKind[] = ["brightness", "contrast", "saturation"];

/** One augmentation: its kind and factor (anomalib draws it uniformly from [0.8, 1.2]). */
export interface Augmentation {
  readonly kind: AugmentKind;
  readonly factor: number;
}

const f32 = Math.fround;
const R = f32(0.2989);
const G = f32(0.587);
const B = f32(0.114);

/**
 * The greyscale of a channels-last RGB image (one value per pixel), as torchvision's
 * `rgb_to_grayscale` computes it in float32.
 *
 * @throws {RangeError} when the length is not a multiple of 3.
 */
export function greyscale(rgb: Float32Array): Float32Array {
  if (rgb.length % 3 !== 0) {
    throw new RangeError(`Cannot convert ${rgb.length} values to greyscale: not RGB triples`);
  }
  const out = new Float32Array(rgb.length / 3);
  for (let p = 0, i = 0; p < out.length; p++, i += 3) {
    out[p] = f32(f32(f32(R * rgb[i]!) + f32(G * rgb[i + 1]!)) + f32(B * rgb[i + 2]!));
  }
  return out;
}

/**
 * Applies one augmentation to a channels-last RGB image in [0, 1]; returns a new image.
 *
 * @throws {RangeError} when the factor is negative or not finite, or the image is not RGB.
 */
export function augmentImage(rgb: Float32Array, aug: Augmentation): Float32Array {
  const { kind, factor } = aug;
  if (!(Number.isFinite(factor) && factor >= 0)) {
    throw new RangeError(`Cannot apply ${kind} factor ${factor}: must be finite and >= 0`);
  }
  if (rgb.length % 3 !== 0) {
    throw new RangeError(`Cannot augment ${rgb.length} values: not RGB triples`);
  }
  const a = f32(factor);
  const b = f32(1 - factor); // torch casts the Python double (1 - ratio) to float32
  const out = new Float32Array(rgb.length);
  const clamp = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  switch (kind) {
    case "brightness":
      for (let i = 0; i < rgb.length; i++) out[i] = clamp(f32(a * rgb[i]!));
      return out;
    case "contrast": {
      const g = greyscale(rgb);
      let sum = 0;
      for (const v of g) sum += v;
      const m = f32(f32(sum / g.length) * b);
      for (let i = 0; i < rgb.length; i++) out[i] = clamp(f32(f32(a * rgb[i]!) + m));
      return out;
    }
    case "saturation": {
      const g = greyscale(rgb);
      for (let p = 0, i = 0; p < g.length; p++, i += 3) {
        const gb = f32(b * g[p]!);
        out[i] = clamp(f32(f32(a * rgb[i]!) + gb));
        out[i + 1] = clamp(f32(f32(a * rgb[i + 1]!) + gb));
        out[i + 2] = clamp(f32(f32(a * rgb[i + 2]!) + gb));
      }
      return out;
    }
  }
}

/**
 * Draws an augmentation as anomalib does: a kind uniformly among the three and a factor
 * uniform in [0.8, 1.2], from a source of uniform numbers in [0, 1).
 */
export function randomAugmentation(random: () => number): Augmentation {
  const kind = AUGMENT_KINDS[Math.min(2, Math.floor(random() * 3))]!;
  return { kind, factor: 0.8 + 0.4 * random() };
}
