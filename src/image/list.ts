/**
 * Listing the images of a folder.
 *
 * @module
 */
import { extname, join } from "node:path";
import { errorMessage, InputError } from "../core/errors.ts";

/** File extensions read as images (PNG and JPEG; the format is sniffed when decoding). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([".png", ".jpg", ".jpeg"]);

/**
 * The PNG / JPEG files directly in a folder, sorted by name, as paths.
 *
 * @throws {InputError} naming the folder when it cannot be read.
 */
export async function listImages(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) names.push(e.name);
    }
  } catch (e) {
    throw new InputError(`Cannot list images in ${dir}: ${errorMessage(e)}`, { cause: e });
  }
  return names.sort().map((n) => join(dir, n));
}
