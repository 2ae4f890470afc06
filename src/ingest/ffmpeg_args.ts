/**
 * ffmpeg and ffprobe command lines, built as data (an argv array, never a shell string) so
 * that they can be tested without ffmpeg and no camera URL is ever parsed by a shell.
 *
 * @module
 */
import type { ResizeMode, Roi } from "../core/capture.ts";
import { assertNonNegativeInteger, assertPositiveInteger } from "../core/check.ts";
import type { CameraSource } from "../core/source.ts";

/** A width and a height in pixels. */
export interface Size {
  readonly width: number;
  readonly height: number;
}

/**
 * Hardware decoding, passed through to ffmpeg before `-i`. Frames are downloaded to system
 * memory (no `-hwaccel_output_format`) so the software filters still apply.
 *
 * @example NVIDIA: `{ type: "cuda" }`; Jetson: `{ decoder: "h264_nvmpi" }`;
 * VAAPI: `{ type: "vaapi", device: "/dev/dri/renderD128" }`.
 */
export interface HwAccel {
  /** `-hwaccel <type>`: `cuda`, `vaapi`, `qsv`, `videotoolbox`, ... */
  readonly type?: string;
  /** `-hwaccel_device <device>`. */
  readonly device?: string;
  /** `-c:v <decoder>` as an input option: `h264_cuvid`, `h264_nvmpi`, ... */
  readonly decoder?: string;
  /** More input arguments, passed through verbatim after the ones above. */
  readonly args?: readonly string[];
}

/** Options of {@linkcode ffmpegArgs}. */
export interface FfmpegArgsOptions {
  /** The model's input width: the width of the frames the camera emits. */
  readonly width: number;
  /** The model's input height. */
  readonly height: number;
  /** Where frames are resized (see {@linkcode ResizeMode}). */
  readonly resize: ResizeMode;
  /**
   * The source's frame size, required in `"exact"` mode without an ROI: ffmpeg then writes
   * frames of exactly this size (a `scale` pinned to it, which is a pure format conversion
   * while the size holds) so that a camera that changes resolution mid-stream cannot shift
   * the frame boundaries of the raw pipe. Ignored otherwise.
   */
  readonly sourceSize?: Size;
  /** Caps the frame rate with ffmpeg's `fps` filter (frames per second, may be fractional). */
  readonly fps?: number;
  /** Crops to this region (source pixels) before any resize. */
  readonly roi?: Roi;
  /** Hardware decoding arguments. */
  readonly hwaccel?: HwAccel;
  /**
   * More input options, passed through verbatim before the hardware decoding options and
   * `-i` (also to ffprobe): `["-input_format", "mjpeg", "-video_size", "1280x720"]` for a
   * V4L2 camera, `["-analyzeduration", "1000000"]` to connect faster to an RTSP camera.
   */
  readonly inputArgs?: readonly string[];
  /** Files only: loop forever (`-stream_loop -1`) instead of ending (and restarting). */
  readonly loop: boolean;
  /** Files and lavfi: read at the native frame rate (`-re`). Default true. */
  readonly realtime?: boolean;
  /** RTSP only: the transport (`rtsps://` requires `"tcp"`). */
  readonly rtspTransport: "tcp" | "udp";
  /**
   * RTSP only: the socket I/O timeout in milliseconds (`-timeout`, which ffmpeg takes in
   * microseconds), so that a dead camera makes ffmpeg fail instead of waiting forever.
   * Default 5000.
   */
  readonly ioTimeoutMs?: number;
  /** ffmpeg's `-loglevel`. Default `"warning"`: stderr holds only what needs attention. */
  readonly logLevel?: string;
}

/** The options ffprobe shares with ffmpeg (see {@linkcode FfmpegArgsOptions}). */
export type FfprobeArgsOptions = Pick<
  FfmpegArgsOptions,
  "rtspTransport" | "ioTimeoutMs" | "inputArgs"
>;

/** The default RTSP socket timeout of {@linkcode FfmpegArgsOptions.ioTimeoutMs}. */
export const DEFAULT_IO_TIMEOUT_MS = 5000;

const ACTION = "Cannot build ffmpeg arguments";

function checkRoi(roi: Roi): void {
  assertNonNegativeInteger(roi.x, "roi.x", ACTION);
  assertNonNegativeInteger(roi.y, "roi.y", ACTION);
  assertPositiveInteger(roi.width, "roi.width", ACTION);
  assertPositiveInteger(roi.height, "roi.height", ACTION);
}

/**
 * The size of the frames ffmpeg writes to stdout for these options: the model size in
 * `"ffmpeg"` mode, else the ROI's size, else the source size.
 *
 * @throws {TypeError} in `"exact"` mode with neither an ROI nor `sourceSize`.
 */
export function ffmpegFrameSize(options: FfmpegArgsOptions): Size {
  if (options.resize === "ffmpeg") {
    return { width: options.width, height: options.height };
  }
  if (options.roi) return { width: options.roi.width, height: options.roi.height };
  if (options.sourceSize) {
    return { width: options.sourceSize.width, height: options.sourceSize.height };
  }
  throw new TypeError(
    "Cannot build ffmpeg arguments: exact resize needs the source size (probe it) or an roi",
  );
}

/**
 * The input part of the command line, shared by ffmpeg and ffprobe: the options before
 * `-i` and `-i <input>` itself. `forProbe` leaves out what only a reader needs (`-re`,
 * `-stream_loop`, hardware decoding).
 */
function inputArgs(
  source: CameraSource,
  options: FfmpegArgsOptions,
  forProbe: boolean,
): string[] {
  const args: string[] = [];
  const realtime = !forProbe && (options.realtime ?? true);
  switch (source.kind) {
    case "rtsp": {
      const transport = options.rtspTransport;
      if (source.tls && transport !== "tcp") {
        throw new RangeError("Cannot build ffmpeg arguments: rtsps:// needs rtspTransport tcp");
      }
      const timeoutMs = options.ioTimeoutMs ?? DEFAULT_IO_TIMEOUT_MS;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
        throw new RangeError(
          `Cannot build ffmpeg arguments: ioTimeoutMs must be positive, got ${timeoutMs}`,
        );
      }
      args.push("-rtsp_transport", transport, "-timeout", String(Math.round(timeoutMs * 1000)));
      // Arrival time, not the camera's RTP clock: cheap cameras jump their timestamps, which
      // would make the fps filter burst or starve.
      if (!forProbe) args.push("-use_wallclock_as_timestamps", "1");
      break;
    }
    case "file":
      if (realtime) args.push("-re");
      if (options.loop && !forProbe) args.push("-stream_loop", "-1");
      break;
    case "lavfi":
      if (realtime) args.push("-re");
      args.push("-f", "lavfi");
      break;
    case "v4l2":
      args.push("-f", "v4l2");
      break;
  }
  if (options.inputArgs) args.push(...options.inputArgs);
  const hw = options.hwaccel;
  if (hw && !forProbe) {
    if (hw.type !== undefined) args.push("-hwaccel", hw.type);
    if (hw.device !== undefined) args.push("-hwaccel_device", hw.device);
    if (hw.decoder !== undefined) args.push("-c:v", hw.decoder);
    if (hw.args) args.push(...hw.args);
  }
  const input = source.kind === "rtsp" ? source.url : source.kind === "file"
    ? `file:${source.path}` // never read as a URL or a protocol (`a:b.mp4`, `-`)
    : source.kind === "lavfi"
    ? source.graph
    : source.device;
  args.push("-i", input);
  return args;
}

/**
 * Builds ffmpeg's argv (without the program name) to decode a camera and write raw RGB24
 * frames of {@linkcode ffmpegFrameSize} to stdout:
 *
 * `-hide_banner -nostats -nostdin -loglevel warning <input options> -i <input>
 * -map 0:v:0 -an -sn -dn -vf <filters> -f rawvideo -pix_fmt rgb24 pipe:1`
 *
 * Input options: RTSP gets `-rtsp_transport tcp -timeout <µs> -use_wallclock_as_timestamps
 * 1`; files `-re` (and `-stream_loop -1` with `loop`) with the path as `file:<path>`; lavfi
 * `-re -f lavfi`; V4L2 `-f v4l2`; then `inputArgs`, then the hardware decoding options. Filters, in order:
 * `fps=N` (cap; note that the fps filter also duplicates frames when the source is slower
 * than N, so set it at or below the camera's rate), `crop=w:h:x:y:exact=1` (ROI; `exact=1`
 * stops ffmpeg rounding odd sizes down on subsampled video), then `scale=W:H:flags=bilinear`
 * to the model size (`"ffmpeg"` mode) or to the pinned source size (`"exact"` mode without
 * ROI); `"exact"` mode with an ROI needs no scale.
 *
 * @throws {RangeError} when a size, the fps, the ROI or the timeout is not valid, or when
 * `rtsps://` is asked to use UDP.
 * @throws {TypeError} in `"exact"` mode with neither an ROI nor `sourceSize`.
 *
 * @example
 * ```ts
 * import { ffmpegArgs } from "./ffmpeg_args.ts";
 * import { parseSource } from "../core/source.ts";
 *
 * const argv = ffmpegArgs(parseSource("lavfi:testsrc=size=640x480:rate=10"), {
 *   width: 256, height: 256, resize: "ffmpeg", loop: false, rtspTransport: "tcp", fps: 5,
 * });
 * const command = new Deno.Command("ffmpeg", { args: argv, stdout: "piped" });
 * ```
 */
export function ffmpegArgs(source: CameraSource, options: FfmpegArgsOptions): string[] {
  assertPositiveInteger(options.width, "width", ACTION);
  assertPositiveInteger(options.height, "height", ACTION);
  if (options.fps !== undefined && !(Number.isFinite(options.fps) && options.fps > 0)) {
    throw new RangeError(`Cannot build ffmpeg arguments: fps must be positive, got ${options.fps}`);
  }
  if (options.roi) checkRoi(options.roi);
  const mode = options.resize;
  const frame = ffmpegFrameSize(options);
  assertPositiveInteger(frame.width, "source width", ACTION);
  assertPositiveInteger(frame.height, "source height", ACTION);

  const filters: string[] = [];
  if (options.fps !== undefined) filters.push(`fps=${options.fps}`);
  const roi = options.roi;
  if (roi) filters.push(`crop=${roi.width}:${roi.height}:${roi.x}:${roi.y}:exact=1`);
  if (mode === "ffmpeg" || !roi) {
    filters.push(`scale=${frame.width}:${frame.height}:flags=bilinear`);
  }

  return [
    "-hide_banner",
    "-nostats",
    "-nostdin",
    "-loglevel",
    options.logLevel ?? "warning",
    ...inputArgs(source, options, false),
    "-map",
    "0:v:0",
    "-an",
    "-sn",
    "-dn",
    "-vf",
    filters.join(","),
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "pipe:1",
  ];
}

/**
 * Builds ffprobe's argv (without the program name) that prints the first video stream's
 * size as JSON (`{"streams":[{"width":W,"height":H}]}`): the same input options as
 * {@linkcode ffmpegArgs} (transport, timeout, format, `inputArgs`) without `-re`, looping or
 * hardware decoding.
 *
 * @throws {RangeError} as {@linkcode ffmpegArgs} for the RTSP options.
 */
export function ffprobeArgs(
  source: CameraSource,
  options: FfprobeArgsOptions,
): string[] {
  return [
    "-hide_banner",
    "-loglevel",
    "error",
    ...inputArgs(source, { width: 1, height: 1, resize: "ffmpeg", loop: false, ...options }, true),
    "-select_streams",
    "v:0",
    "-show_entries",
    "stream=width,height",
    "-of",
    "json",
  ];
}
