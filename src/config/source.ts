/**
 * Camera sources: what a camera's `url` names and how ffmpeg opens it.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A camera source, told apart by the `url`'s form:
 * - `rtsp://` / `rtsps://`: a network camera (credentials may sit in the URL);
 * - `lavfi:<filtergraph>`: an ffmpeg test source (`lavfi:testsrc2=size=640x480:rate=10`);
 * - `v4l2:/dev/video0` or `/dev/videoN`: a V4L2 capture device;
 * - anything else without a scheme, or `file://`: a video file.
 */
export type CameraSource =
  | { readonly kind: "rtsp"; readonly url: string }
  | { readonly kind: "lavfi"; readonly graph: string }
  | { readonly kind: "v4l2"; readonly device: string }
  | { readonly kind: "file"; readonly path: string };

/** The result of {@linkcode parseSource}: a source, or why the text is not one. */
export type SourceParse =
  | { readonly ok: true; readonly source: CameraSource }
  | { readonly ok: false; readonly message: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const EXPECTED = "expected rtsp://, rtsps://, lavfi:<filtergraph>, v4l2:<device>, /dev/videoN " +
  "or a file path";

/**
 * Reads a camera `url`. Relative file paths are resolved against `baseDir`. Messages never
 * quote the URL (it may hold credentials).
 */
export function parseSource(text: string, baseDir: string): SourceParse {
  if (text.trim() === "") return { ok: false, message: `expected a source: ${EXPECTED}` };
  if (text.startsWith("lavfi:")) {
    const graph = text.slice("lavfi:".length);
    if (graph.trim() === "") {
      return { ok: false, message: "expected a filtergraph after lavfi:" };
    }
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
    return { ok: true, source: { kind: "rtsp", url: text } };
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
  if (/^[a-z][a-z0-9+.-]*:[^/\\]/i.test(text) && !/^[a-z]:[\\/]/i.test(text)) {
    const prefix = text.slice(0, text.indexOf(":"));
    return { ok: false, message: `unsupported source prefix ${prefix}: ${EXPECTED}` };
  }
  return {
    ok: true,
    source: { kind: "file", path: isAbsolute(text) ? text : resolve(baseDir, text) },
  };
}
