/**
 * Crash-safe file replacement: the one helper every module uses to write a file that must
 * survive a crash whole (model files, checkpoints, the registry pointer, stored frames).
 *
 * The argument: the bytes go to a temporary file in the same directory, which is flushed
 * to disk (`fsync`) before it is renamed over the target, and the directory is flushed
 * after the rename. A rename within one directory is atomic, so after a crash at any point
 * a reader finds the old file or the new one, never a torn one; the flush before the
 * rename makes sure the name never points at data still in the page cache, and the flush
 * after it that the new name itself survives a power loss.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_write.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/state.json`, new TextEncoder().encode("{}"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
import { dirname } from "node:path";

/** Options of {@linkcode writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Called after the temporary file is written and flushed, before the rename (a test's
   * failpoint, a crash test's kill). The temporary file's path is passed.
   */
  readonly beforeRename?: (temp: string) => void | Promise<void>;
  /** Writes and flushes the temporary file; tests inject failures here. */
  readonly writeTemp?: (temp: string, bytes: Uint8Array) => Promise<void>;
}

/**
 * Writes bytes to `path` crash-safely (see the module doc): temporary file, `fsync`,
 * rename, `fsync` of the directory. The temporary file is removed when the write fails.
 *
 * @throws the file system's error when the write, the flush or the rename fails.
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await (options.writeTemp ?? writeFileSynced)(temp, bytes);
    await options.beforeRename?.(temp);
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  await fsyncDir(dirname(path));
}

/**
 * Writes `bytes` to `path` (created or truncated) and flushes them to disk.
 *
 * @throws the file system's error.
 */
export async function writeFileSynced(path: string, bytes: Uint8Array): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
  await file.syncData();
}

/**
 * Flushes an existing file's data to disk.
 *
 * @throws the file system's error (a missing file: `Deno.errors.NotFound`).
 */
export async function fsyncFile(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.syncData();
}

/**
 * Flushes a directory's entries (a rename, a new file) to disk. Platforms that cannot
 * open or sync a directory are passed over silently: the rename is still atomic there.
 */
export async function fsyncDir(path: string): Promise<void> {
  try {
    using dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch {
    // Not every platform can open or sync a directory.
  }
}
