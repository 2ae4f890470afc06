/**
 * Camera sources: what a camera's `url` names, told apart once for the whole service. The
 * pipeline config classifies each `url` once ({@linkcode classifySource}, through
 * `src/config/source.ts`) and hands the {@linkcode CameraSource} to the ingest stage, which
 * builds ffmpeg's input from it and shows it with credentials redacted
 * ({@linkcode describeSource}, {@linkcode sourceSecrets}). The forms:
 *
 * - `rtsp://[user:pass@]host[:port]/path` and `rtsps://...`: a network camera (credentials
 *   may sit in the URL);
 * - `lavfi:<filtergraph>`: an ffmpeg test source (`lavfi:testsrc2=size=640x480:rate=10`);
 * - `v4l2:/dev/video0` or `/dev/videoN`: a V4L2 capture device;
 * - `file://` URLs, `file:<path>`, and anything else without a scheme: a video file.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { redact, urlSecrets } from "./redact.ts";

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
  /** As written (relative paths are resolved by the config against the pipeline file). */
  readonly path: string;
}

/** An ffmpeg `lavfi` filter graph used as a synthetic camera. */
export interface LavfiSource {
  readonly kind: "lavfi";
  readonly graph: string;
}

/** A V4L2 capture device. */
export interface V4l2Source {
  readonly kind: "v4l2";
  readonly device: string;
}

/** A camera source. */
export type CameraSource = RtspSource | FileSource | LavfiSource | V4l2Source;

/** The result of {@linkcode classifySource}: a source, or why the text is not one. */
export type SourceParse =
  | { readonly ok: true; readonly source: CameraSource }
  | { readonly ok: false; readonly message: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const EXPECTED = "expected rtsp://, rtsps://, lavfi:<filtergraph>, v4l2:<device>, /dev/videoN " +
  "or a file path";

/**
 * Tells what a camera `url` names. Messages never quote the text (it may hold credentials).
 *
 * @example
 * ```ts
 * classifySource("rtsp://admin:pw@10.0.0.5/s1"); // { ok: true, source: { kind: "rtsp", ... } }
 * ```
 */
export function classifySource(text: string): SourceParse {
  if (text.trim() === "") return { ok: false, message: `expected a source: ${EXPECTED}` };
  if (text.startsWith("lavfi:")) {
    const graph = text.slice("lavfi:".length);
    if (graph.trim() === "") return { ok: false, message: "expected a filtergraph after lavfi:" };
    return { ok: true, source: { kind: "lavfi", graph } };
  }
  if (text.startsWith("v4l2:")) {
    const device = text.slice("v4l2:".length);
    if (!device.startsWith("/dev/")) {
      return { ok: false, message: "expected a device path after v4l2:, e.g. v4l2:/dev/video0" };
    }
    return { ok: true, source: { kind: "v4l2", device } };
  }
  if (/^\/dev\/video\d+$/.test(text)) return { ok: true, source: { kind: "v4l2", device: text } };
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  if (scheme === "rtsp" || scheme === "rtsps") {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { ok: false, message: `expected a valid ${scheme}:// URL` };
    }
    if (url.hostname === "") return { ok: false, message: `expected a host in the ${scheme} URL` };
    return { ok: true, source: { kind: "rtsp", url: text, tls: scheme === "rtsps" } };
  }
  if (scheme === "file") {
    try {
      return { ok: true, source: { kind: "file", path: fileURLToPath(text) } };
    } catch {
      return { ok: false, message: "expected a valid file:// URL" };
    }
  }
  if (scheme !== undefined) {
    return { ok: false, message: `unsupported source scheme ${scheme}://: ${EXPECTED}` };
  }
  if (text.startsWith("file:")) {
    const path = text.slice("file:".length);
    if (path === "") return { ok: false, message: "expected a path after file:" };
    return { ok: true, source: { kind: "file", path } };
  }
  if (/^[a-z][a-z0-9+.-]*:[^/\\]/i.test(text) && !/^[a-z]:[\\/]/i.test(text)) {
    const prefix = text.slice(0, text.indexOf(":"));
    return { ok: false, message: `unsupported source prefix ${prefix}: ${EXPECTED}` };
  }
  return { ok: true, source: { kind: "file", path: text } };
}

/**
 * Parses a camera source string with {@linkcode classifySource}, for code that has a string
 * and no pipeline file (tools, tests).
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
export function parseSource(text: string): CameraSource {
  const parsed = classifySource(text);
  if (parsed.ok) return parsed.source;
  throw new TypeError(`Cannot parse camera source ${redact(text)}: ${parsed.message}`);
}

/**
 * The password of an RTSP URL (raw and percent-decoded), to redact from ffmpeg's messages
 * in case it prints it outside a URL. Empty for other sources and URLs without a password.
 * (User names are masked only inside URLs: they are not secret, and short ones such as
 * `cam` would mangle unrelated text.)
 */
export function sourceSecrets(source: CameraSource): string[] {
  return source.kind === "rtsp" ? urlSecrets(source.url) : [];
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
