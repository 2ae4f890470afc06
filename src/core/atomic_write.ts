/**
 * Crash-safe file replacement.
 *
 * @module
 */

/**
 * Writes bytes to `path` through a temporary file in the same directory and a rename, so
 * readers see the old file or the new one, never half of one. The temporary file is
 * removed when the write fails.
 *
 * @throws the file system's error when the write or the rename fails.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeFile(temp, bytes);
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
