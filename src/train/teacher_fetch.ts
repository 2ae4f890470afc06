/**
 * anomalib's pretrained EfficientAD teachers: download the release zip
 * `efficientad_pretrained_weights.zip`, check its sha256, unpack it and store the
 * teachers where `train --teacher` finds them.
 *
 * The zip holds `efficientad_pretrained_weights/pretrained_teacher_small.pth` and
 * `..._medium.pth`: PyTorch zip checkpoints of a teacher-only state dict, which
 * {@linkcode loadTeacher} reads as they are. They are kept in that format (validated first,
 * then written atomically), so the files are byte-identical to anomalib's.
 *
 * @module
 */
import { sha256Hex } from "../core/sha256.ts";
import { basename, join } from "node:path";
import { unzipSync } from "fflate";
import { writeFileAtomic } from "../core/atomic_write.ts";
import { errorMessage } from "../core/errors.ts";
import { loadTeacher } from "../model/artifact.ts";
import type { ModelSize } from "../model/config.ts";

/** The release asset, as anomalib's `EfficientAd` downloads it (repository moved; both work). */
export const TEACHER_ZIP_URLS: readonly string[] = [
  "https://github.com/open-edge-platform/anomalib/releases/download/efficientad_pretrained_weights/efficientad_pretrained_weights.zip",
  "https://github.com/openvinotoolkit/anomalib/releases/download/efficientad_pretrained_weights/efficientad_pretrained_weights.zip",
];

/** The sha256 anomalib checks the zip against. */
export const TEACHER_ZIP_SHA256 =
  "c09aeaa2b33f244b3261a5efdaeae8f8284a949470a4c5a526c61275fe62684a";

/** Where `teacher fetch` writes by default. */
export const DEFAULT_TEACHER_DIR = "models/teachers";

/** The file name of a teacher in the zip and in the output folder. */
export function teacherFileName(size: ModelSize): string {
  return `pretrained_teacher_${size === "s" ? "small" : "medium"}.pth`;
}

/** The zip's checksum is not the expected one. */
export class ChecksumError extends Error {
  /** The hash computed. */
  readonly actual: string;
  /** The hash expected. */
  readonly expected: string;
  constructor(name: string, actual: string, expected: string) {
    super(
      `Cannot use ${name}: its sha256 is ${actual}, expected ${expected} ` +
        `(a corrupt or different download)`,
    );
    this.name = "ChecksumError";
    this.actual = actual;
    this.expected = expected;
  }
}

/**
 * Checks bytes against a sha256.
 *
 * @param name names the bytes in the error (a file or URL).
 * @throws {ChecksumError} naming both hashes on a mismatch.
 */
export async function verifySha256(
  bytes: Uint8Array,
  expected: string,
  name: string,
): Promise<void> {
  const actual = await sha256Hex(bytes);
  if (actual !== expected.toLowerCase()) throw new ChecksumError(name, actual, expected);
}

/** Options of {@linkcode downloadTeacherZip}. */
export interface DownloadOptions {
  /** URLs tried in order. Default {@linkcode TEACHER_ZIP_URLS}. */
  readonly urls?: readonly string[];
  /** Aborts the download. */
  readonly signal?: AbortSignal;
  /** The fetch to use (tests). Default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
}

/**
 * Downloads the release zip (following GitHub's redirects). The sha256 is not checked here
 * (see {@linkcode installTeachers}).
 *
 * @throws {Error} "Cannot download ..." naming each URL and why, with the offline
 * alternative (`--from <zip>`), when no URL gives the file.
 */
export async function downloadTeacherZip(options: DownloadOptions = {}): Promise<Uint8Array> {
  const doFetch = options.fetch ?? fetch;
  const problems: string[] = [];
  for (const url of options.urls ?? TEACHER_ZIP_URLS) {
    try {
      const res = await doFetch(url, options.signal ? { signal: options.signal } : {});
      if (!res.ok) {
        await res.body?.cancel();
        problems.push(`${url}: HTTP ${res.status}`);
        continue;
      }
      return new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      if (options.signal?.aborted) throw e;
      problems.push(`${url}: ${errorMessage(e)}`);
    }
  }
  throw new Error(
    `Cannot download anomalib's pretrained teachers (offline?): ${problems.join("; ")}. ` +
      `Download efficientad_pretrained_weights.zip on a connected machine and run ` +
      `\`teacher fetch --from <zip>\``,
  );
}

/** A teacher written by {@linkcode installTeachers}. */
export interface InstalledTeacher {
  readonly size: ModelSize;
  readonly outChannels: number;
  readonly path: string;
}

/** Options of {@linkcode installTeachers}. */
export interface InstallOptions {
  /** The sha256 the zip must have. Default {@linkcode TEACHER_ZIP_SHA256}. */
  readonly sha256?: string;
  /** Names the zip in messages. Default `efficientad_pretrained_weights.zip`. */
  readonly name?: string;
}

/**
 * Checks the zip's sha256, unpacks the `pretrained_teacher_small.pth` /
 * `pretrained_teacher_medium.pth` entries (wherever they lie in the zip), validates each
 * as a teacher of its size, and writes it to `outDir` crash-safely (`writeFileAtomic`:
 * validated under its temporary name, flushed, then renamed).
 *
 * @throws {ChecksumError} on a sha256 mismatch (nothing is written);
 * {@linkcode Error} "Cannot unpack ..." when the zip is corrupt or holds no teacher;
 * `ModelFormatError` when a teacher file is invalid or of the wrong size.
 */
export async function installTeachers(
  zip: Uint8Array,
  outDir: string,
  options: InstallOptions = {},
): Promise<InstalledTeacher[]> {
  const name = options.name ?? "efficientad_pretrained_weights.zip";
  await verifySha256(zip, options.sha256 ?? TEACHER_ZIP_SHA256, name);
  const wanted = new Map<string, ModelSize>([
    [teacherFileName("s"), "s"],
    [teacherFileName("m"), "m"],
  ]);
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip, { filter: (f) => wanted.has(basename(f.name)) });
  } catch (e) {
    throw new Error(`Cannot unpack ${name}: ${errorMessage(e)}`, { cause: e });
  }
  const found = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));
  if (found.length === 0) {
    throw new Error(
      `Cannot unpack ${name}: it holds neither ${teacherFileName("s")} nor ${teacherFileName("m")}`,
    );
  }
  await Deno.mkdir(outDir, { recursive: true });
  const out: InstalledTeacher[] = [];
  for (const [entry, bytes] of found) {
    const size = wanted.get(basename(entry))!;
    const path = join(outDir, teacherFileName(size));
    let outChannels = 0;
    // Validated under its temporary name, so an invalid teacher never replaces a good one.
    await writeFileAtomic(path, bytes, {
      beforeRename: async (temp) => {
        const teacher = await loadTeacher(temp);
        if (teacher.size !== size) {
          throw new Error(
            `Cannot install ${entry}: it holds a size ${teacher.size.toUpperCase()} teacher`,
          );
        }
        outChannels = teacher.outChannels;
      },
    });
    out.push({ size, outChannels, path });
  }
  return out;
}

/**
 * Resolves `--teacher` when it names a folder of installed teachers (no `model.json`):
 * the file for `size` in it; any other path is returned unchanged.
 */
export async function resolveTeacherPath(path: string, size: ModelSize): Promise<string> {
  if (!(await isDirectory(path)) || (await isFile(join(path, "model.json")))) return path;
  const candidate = join(path, teacherFileName(size));
  return (await isFile(candidate)) ? candidate : path;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
