/**
 * Camera sources for the ingest stage: the strings a pipeline file names, classified by
 * `src/core/source.ts` into the tagged union that `ffmpegArgs` turns into ffmpeg's input
 * arguments, and shown with credentials redacted.
 *
 * @module
 */
import { redact } from "../core/redact.ts";
import { type CameraSource, classifySource } from "../core/source.ts";

export type {
  CameraSource,
  FileSource,
  LavfiSource,
  RtspSource,
  V4l2Source,
} from "../core/source.ts";

/**
 * Parses a camera source string with {@linkcode classifySource} (see `src/core/source.ts`
 * for the forms).
 *
 * @throws {TypeError} when the string names no source (empty, an unsupported scheme such as
 * `http://`, ...); the message holds the source with credentials redacted.
 *
 * @example
 * ```ts
 * parseSource("rtsp://admin:pw@10.0.0.5/s1"); // { kind: "rtsp", url: ..., tls: false }
 * parseSource("lavfi:testsrc=size=320x240:rate=10"); // { kind: "lavfi", graph: ... }
 * ```
 */
export function parseSource(source: string): CameraSource {
  const parsed = classifySource(source);
  if (parsed.ok) return parsed.source;
  throw new TypeError(`Cannot parse camera source ${redact(source)}: ${parsed.message}`);
}

/**
 * The password of an RTSP URL (raw and percent-decoded), to redact from ffmpeg's messages
 * in case it prints it outside a URL. Empty for other sources and URLs without a password.
 * (User names are masked only inside URLs: they are not secret, and short ones such as
 * `cam` would mangle unrelated text.)
 */
export function sourceSecrets(source: CameraSource): string[] {
  if (source.kind !== "rtsp") return [];
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:([^/@\s]*)@/i.exec(source.url);
  const password = m?.[1];
  if (!password) return [];
  const out = new Set([password]);
  try {
    out.add(decodeURIComponent(password));
  } catch {
    // not valid percent-encoding: the raw form is enough
  }
  return [...out];
}

/** A source as it may appear in logs, status and errors: URL credentials replaced by `***`. */
export function describeSource(source: CameraSource): string {
  switch (source.kind) {
    case "rtsp":
      return redact(source.url, sourceSecrets(source));
    case "file":
      return source.path;
    case "lavfi":
      return `lavfi:${source.graph}`;
    case "v4l2":
      return source.device;
  }
}
