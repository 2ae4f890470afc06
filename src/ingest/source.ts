/**
 * Camera sources: the strings a pipeline file names (`rtsp://...`, a file path,
 * `lavfi:<graph>`, `/dev/videoN`) parsed into a tagged union that {@linkcode ffmpegArgs}
 * turns into ffmpeg's input arguments.
 *
 * @module
 */
import { redact } from "../core/redact.ts";

/** An RTSP camera (`rtsp://` or `rtsps://`, credentials allowed in the URL). */
export interface RtspSource {
  readonly kind: "rtsp";
  /** The URL exactly as given, credentials included: only ever passed to ffmpeg. */
  readonly url: string;
  /** Whether the URL is `rtsps://` (RTSP over TLS, TCP only). */
  readonly tls: boolean;
}

/** A video file, read in real time (`-re`) and optionally looped. */
export interface FileSource {
  readonly kind: "file";
  readonly path: string;
}

/** An ffmpeg `lavfi` filter graph used as a synthetic camera (`lavfi:testsrc=size=640x480`). */
export interface LavfiSource {
  readonly kind: "lavfi";
  readonly graph: string;
}

/** A V4L2 capture device (`/dev/video0`, or `v4l2:/dev/video0`). */
export interface V4l2Source {
  readonly kind: "v4l2";
  readonly device: string;
}

/** A parsed camera source. */
export type CameraSource = RtspSource | FileSource | LavfiSource | V4l2Source;

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Parses a camera source string:
 *
 * - `rtsp://[user:pass@]host[:port]/path` and `rtsps://...`: an RTSP camera;
 * - `lavfi:<graph>`: an ffmpeg filter-graph source (test patterns, the demo scene);
 * - `/dev/videoN` or `v4l2:<device>`: a V4L2 device;
 * - `file:<path>` or any other string without a `scheme://`: a video file.
 *
 * @throws {TypeError} when the string is empty or names an unsupported URL scheme
 * (`http://`, `rtmp://`, ...); the message holds the source with credentials redacted.
 *
 * @example
 * ```ts
 * parseSource("rtsp://admin:pw@10.0.0.5/s1"); // { kind: "rtsp", url: ..., tls: false }
 * parseSource("lavfi:testsrc=size=320x240:rate=10"); // { kind: "lavfi", graph: ... }
 * ```
 */
export function parseSource(source: string): CameraSource {
  if (source.trim() === "") throw new TypeError("Cannot parse camera source: it is empty");
  const scheme = SCHEME.exec(source)?.[1]?.toLowerCase();
  if (scheme === "rtsp" || scheme === "rtsps") {
    return { kind: "rtsp", url: source, tls: scheme === "rtsps" };
  }
  if (scheme !== undefined) {
    throw new TypeError(
      `Cannot parse camera source ${redact(source)}: unsupported scheme "${scheme}" ` +
        "(expected rtsp://, rtsps://, lavfi:, v4l2:, /dev/videoN or a file path)",
    );
  }
  if (source.startsWith("lavfi:")) {
    const graph = source.slice("lavfi:".length);
    if (graph === "") throw new TypeError("Cannot parse camera source lavfi: the graph is empty");
    return { kind: "lavfi", graph };
  }
  if (source.startsWith("v4l2:")) {
    const device = source.slice("v4l2:".length);
    if (device === "") throw new TypeError("Cannot parse camera source v4l2: the device is empty");
    return { kind: "v4l2", device };
  }
  if (/^\/dev\/video\d+$/.test(source)) return { kind: "v4l2", device: source };
  const path = source.startsWith("file:") ? source.slice("file:".length) : source;
  if (path === "") throw new TypeError("Cannot parse camera source file: the path is empty");
  return { kind: "file", path };
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
