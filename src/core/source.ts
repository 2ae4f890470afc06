/**
 * Camera sources: what a camera's `url` names, told apart once for the whole service (the
 * pipeline config validates with it, the ingest stage builds ffmpeg's input from it):
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
