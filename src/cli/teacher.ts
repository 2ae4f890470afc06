/**
 * The `teacher` command: `teacher fetch` installs anomalib's pretrained EfficientAD
 * teachers for `train --teacher`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import {
  DEFAULT_TEACHER_DIR,
  downloadTeacherZip,
  type InstalledTeacher,
  installTeachers,
  TEACHER_ZIP_SHA256,
} from "../train/teacher_fetch.ts";

/** Usage lines of `teacher`, for the CLI's help text. */
export const TEACHER_USAGE = `  teacher fetch [--out <dir>] [--from <zip file>]
                            install anomalib's pretrained teachers (small, medium) for
                            train --teacher: download efficientad_pretrained_weights.zip
                            (or use --from), check its sha256, unpack into --out
                            (default ${DEFAULT_TEACHER_DIR})
`;

/** Options of {@linkcode teacherCommand} (tests). */
export interface TeacherCommandOptions {
  /** The sha256 the zip must have. Default anomalib's. */
  readonly sha256?: string;
  /** The fetch used for the download. */
  readonly fetch?: typeof fetch;
  /** URLs to try. */
  readonly urls?: readonly string[];
  /** Aborts the download. */
  readonly signal?: AbortSignal;
}

/**
 * `teacher fetch`: see {@linkcode TEACHER_USAGE}.
 *
 * @returns the teachers written.
 * @throws {InputError} on an unknown subcommand or flag, or an unreadable `--from` file;
 * `ChecksumError` on a sha256 mismatch; `Error` "Cannot download ..." when offline.
 */
export async function teacherCommand(
  args: string[],
  log: Logger,
  options: TeacherCommandOptions = {},
): Promise<InstalledTeacher[]> {
  const [sub, ...rest] = args;
  if (sub !== "fetch") {
    throw new InputError(
      `Cannot run teacher${sub ? ` ${sub}` : ""}: expected ` +
        "`teacher fetch [--out <dir>] [--from <zip>]`",
    );
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { out: { type: "string" }, from: { type: "string" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new InputError(`Cannot parse teacher fetch options: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  const out = values.out ?? DEFAULT_TEACHER_DIR;
  let zip: Uint8Array;
  let name: string;
  if (values.from !== undefined) {
    try {
      zip = await Deno.readFile(values.from);
    } catch (e) {
      throw new InputError(`Cannot read ${values.from}: ${errorMessage(e)}`, { cause: e });
    }
    name = values.from;
  } else {
    log.info("downloading anomalib's pretrained teachers (efficientad_pretrained_weights.zip)");
    zip = await downloadTeacherZip({
      ...(options.urls ? { urls: options.urls } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    name = "efficientad_pretrained_weights.zip";
  }
  const installed = await installTeachers(zip, out, {
    sha256: options.sha256 ?? TEACHER_ZIP_SHA256,
    name,
  });
  for (const t of installed) {
    log.info("teacher installed", { size: t.size, channels: t.outChannels, path: t.path });
  }
  log.info(`train with --teacher ${out} (the file matching --size is used)`);
  return installed;
}
