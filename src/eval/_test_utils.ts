/**
 * A tiny MVTec-like category for the evaluation tests, written into a folder: grey
 * textured images, anomalous ones with a bright square that their mask marks.
 *
 * @module
 */
import { join } from "node:path";
import { encodePng, type RgbImage } from "../image/decode.ts";

/** Options of {@linkcode writeFixtureCategory}. */
export interface FixtureOptions {
  /** Image side in pixels. Default 256. */
  readonly size?: number;
  /** Normal test images. Default 2. */
  readonly good?: number;
  /** Anomalous test images per defect type. Default `{ scratch: 2 }`. */
  readonly defects?: Readonly<Record<string, number>>;
  /** Normal training images (`train/good`). Default 1. */
  readonly train?: number;
}

function image(size: number, seed: number, square?: readonly [number, number, number]): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = 90 + ((x * 7 + y * 13 + seed * 31) % 40);
      data.fill(v, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  if (square) {
    const [x0, y0, side] = square;
    for (let y = y0; y < y0 + side; y++) {
      for (let x = x0; x < x0 + side; x++) {
        data.fill(250, (y * size + x) * 3, (y * size + x) * 3 + 3);
      }
    }
  }
  return { width: size, height: size, data };
}

function mask(size: number, square: readonly [number, number, number]): RgbImage {
  const data = new Uint8Array(size * size * 3);
  const [x0, y0, side] = square;
  for (let y = y0; y < y0 + side; y++) {
    for (let x = x0; x < x0 + side; x++) data.fill(255, (y * size + x) * 3, (y * size + x) * 3 + 3);
  }
  return { width: size, height: size, data };
}

/**
 * Writes the category under `root` and returns the number of test images. The k-th
 * anomalous image of a defect has a bright square of side `size / 8 * (k + 1)`.
 */
export async function writeFixtureCategory(
  root: string,
  options: FixtureOptions = {},
): Promise<number> {
  const size = options.size ?? 256;
  const defects = options.defects ?? { scratch: 2 };
  const write = async (dir: string, name: string, img: RgbImage) => {
    await Deno.mkdir(join(root, dir), { recursive: true });
    await Deno.writeFile(join(root, dir, name), encodePng(img));
  };
  let count = 0;
  for (let i = 0; i < (options.train ?? 1); i++) {
    await write("train/good", `${String(i).padStart(3, "0")}.png`, image(size, 100 + i));
  }
  for (let i = 0; i < (options.good ?? 2); i++) {
    await write("test/good", `${String(i).padStart(3, "0")}.png`, image(size, i));
    count++;
  }
  let seed = 50;
  for (const [defect, n] of Object.entries(defects)) {
    for (let k = 0; k < n; k++) {
      const side = Math.max(1, Math.floor(size / 8) * (k + 1));
      const square = [Math.floor(size / 4), Math.floor(size / 3), side] as const;
      const name = String(k).padStart(3, "0");
      await write(`test/${defect}`, `${name}.png`, image(size, seed++, square));
      await write(`ground_truth/${defect}`, `${name}_mask.png`, mask(size, square));
      count++;
    }
  }
  return count;
}
