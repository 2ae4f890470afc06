/**
 * MVTec AD-style categories on disk: what the evaluation and training read.
 *
 * ```
 * <root>/train/good/*.png                      normal training images
 * <root>/test/good/*.png                       normal test images (no masks)
 * <root>/test/<defect>/<name>.png              anomalous test images
 * <root>/ground_truth/<defect>/<name>_mask.png their masks (0 = normal, > 0 = anomalous)
 * ```
 *
 * PNG and JPEG images are accepted (`.png`, `.jpg`, `.jpeg`); files are listed in name
 * order, defects in name order with `good` first, so runs are reproducible.
 *
 * @module
 */
import { listImages } from "../image/list.ts";
import { basename, extname, join } from "node:path";
import { InputError } from "../core/errors.ts";
import { readImage } from "../image/decode.ts";

/** One test image of a category. */
export interface TestSample {
  /** The image file. */
  readonly path: string;
  /** The test folder it is in: `good` or a defect type. */
  readonly defect: string;
  /** 0 = normal (`good`), 1 = anomalous. */
  readonly label: 0 | 1;
  /** The ground-truth mask of an anomalous image; normal images have none (all zero). */
  readonly maskPath?: string;
}

/** A category's files. */
export interface MvtecCategory {
  /** The category folder. */
  readonly root: string;
  /** Its name (the folder's base name), e.g. `bottle`. */
  readonly name: string;
  /** Normal training images (`train/good`); empty when there is no `train` folder. */
  readonly train: readonly string[];
  /** Test images, `good` first, then each defect type. */
  readonly test: readonly TestSample[];
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function listDirs(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isDirectory) names.push(e.name);
  return names.sort();
}

/**
 * Lists an MVTec-style category: training images, test images with labels, and the mask
 * of every anomalous test image.
 *
 * @throws {InputError} when `root` is not a folder, `test/` is missing or holds no images,
 * `test/good` is missing, or an anomalous image has no `ground_truth/<defect>/<name>_mask.*`.
 */
export async function readCategory(root: string): Promise<MvtecCategory> {
  if (!await isDirectory(root)) {
    throw new InputError(`Cannot read dataset ${root}: not a folder`);
  }
  const testDir = join(root, "test");
  if (!await isDirectory(testDir)) {
    throw new InputError(
      `Cannot read dataset ${root}: no test/ folder (expected an MVTec-style category: ` +
        `test/good/*.png, test/<defect>/*.png, ground_truth/<defect>/<name>_mask.png)`,
    );
  }
  const defects = await listDirs(testDir);
  if (!defects.includes("good")) {
    throw new InputError(`Cannot read dataset ${root}: no test/good/ folder of normal images`);
  }
  const ordered = ["good", ...defects.filter((d) => d !== "good")];
  const test: TestSample[] = [];
  for (const defect of ordered) {
    const images = await listImages(join(testDir, defect));
    if (defect === "good") {
      for (const path of images) test.push({ path, defect, label: 0 });
      continue;
    }
    const gtDir = join(root, "ground_truth", defect);
    const masks = await isDirectory(gtDir) ? await listImages(gtDir) : [];
    const byStem = new Map(masks.map((m) => [stem(m), m]));
    for (const path of images) {
      const want = `${stem(path)}_mask`;
      const maskPath = byStem.get(want);
      if (maskPath === undefined) {
        throw new InputError(
          `Cannot read dataset ${root}: ${path} has no mask (expected ${join(gtDir, want)}.png)`,
        );
      }
      test.push({ path, defect, label: 1, maskPath });
    }
  }
  if (test.length === 0) {
    throw new InputError(`Cannot read dataset ${root}: test/ holds no PNG or JPEG images`);
  }
  const trainDir = join(root, "train", "good");
  const train = await isDirectory(trainDir) ? await listImages(trainDir) : [];
  return { root, name: basename(root.replace(/[\\/]+$/, "")), train, test };
}

function stem(path: string): string {
  const name = basename(path);
  return name.slice(0, name.length - extname(name).length);
}

/**
 * Nearest-neighbour resize of a single-channel plane from `sizes.from` to `sizes.to`
 * (height, width each), as PyTorch's
 * `nearest` mode (source index `floor(dst * in / out)`): masks stay binary.
 *
 * @throws {RangeError} when the plane does not hold `width * height` values or a size is
 * not a positive integer.
 */
export function resizeNearest(
  plane: Uint8Array,
  sizes: { readonly from: readonly [number, number]; readonly to: readonly [number, number] },
): Uint8Array {
  const [inH, inW] = sizes.from;
  const [outH, outW] = sizes.to;
  if (![inH, inW, outH, outW].every((d) => Number.isInteger(d) && d >= 1)) {
    throw new RangeError(
      `Cannot resize ${inH}x${inW} to ${outH}x${outW}: sizes must be positive integers`,
    );
  }
  if (plane.length !== inH * inW) {
    throw new RangeError(
      `Cannot resize: a ${inH}x${inW} plane needs ${inH * inW} values, got ${plane.length}`,
    );
  }
  if (inH === outH && inW === outW) return plane.slice();
  const out = new Uint8Array(outH * outW);
  const xs = Int32Array.from(
    { length: outW },
    (_, x) => Math.min(Math.floor(x * inW / outW), inW - 1),
  );
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(Math.floor(y * inH / outH), inH - 1);
    for (let x = 0; x < outW; x++) out[y * outW + x] = plane[sy * inW + xs[x]!]!;
  }
  return out;
}

/**
 * Reads a test image's mask as 0/1 bytes at `size` (height, width), resized with
 * {@linkcode resizeNearest}; a normal image (no mask) gives all zeros. A pixel is
 * anomalous when its first channel is above 127 (MVTec masks are 0 or 255).
 *
 * @throws {InputError} when the mask cannot be read or decoded.
 */
export async function readMask(
  sample: TestSample,
  size: readonly [number, number],
): Promise<Uint8Array> {
  const [h, w] = size;
  if (sample.maskPath === undefined) return new Uint8Array(h * w);
  const img = await readImage(sample.maskPath);
  const plane = new Uint8Array(img.width * img.height);
  for (let p = 0; p < plane.length; p++) plane[p] = img.data[p * 3]! > 127 ? 1 : 0;
  return resizeNearest(plane, { from: [img.height, img.width], to: [h, w] });
}

export { listImages };
