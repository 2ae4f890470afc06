import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { ffmpegArgs, ffmpegFrameSize, ffprobeArgs } from "./ffmpeg_args.ts";
import { parseSource } from "../core/source.ts";

const HEAD = ["-hide_banner", "-nostats", "-nostdin", "-loglevel", "warning"];
const TAIL = ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"];
const MAP = ["-map", "0:v:0", "-an", "-sn", "-dn"];
const MODEL = { width: 256, height: 256 };
/** The options every camera states (the pipeline file's defaults fill them in). */
const OPTIONS = { ...MODEL, resize: "ffmpeg", loop: false, rtspTransport: "tcp" } as const;

Deno.test("ffmpegArgs() reads an RTSP camera over TCP with a socket timeout", () => {
  assertEquals(ffmpegArgs(parseSource("rtsp://u:p@10.0.0.5/s1"), OPTIONS), [
    ...HEAD,
    ...["-rtsp_transport", "tcp", "-timeout", "5000000", "-use_wallclock_as_timestamps", "1"],
    ...["-i", "rtsp://u:p@10.0.0.5/s1"],
    ...MAP,
    ...["-vf", "scale=256:256:flags=bilinear"],
    ...TAIL,
  ]);
});

Deno.test("ffmpegArgs() caps fps with a filter, crops the ROI, then scales", () => {
  const argv = ffmpegArgs(parseSource("rtsp://cam/s1"), {
    ...OPTIONS,
    fps: 5,
    roi: { x: 100, y: 50, width: 640, height: 480 },
    rtspTransport: "udp",
    ioTimeoutMs: 2500,
  });
  assertEquals(argv, [
    ...HEAD,
    ...["-rtsp_transport", "udp", "-timeout", "2500000", "-use_wallclock_as_timestamps", "1"],
    ...["-i", "rtsp://cam/s1"],
    ...MAP,
    ...["-vf", "fps=5,crop=640:480:100:50:exact=1,scale=256:256:flags=bilinear"],
    ...TAIL,
  ]);
});

Deno.test("ffmpegArgs() paces a file in real time and loops it on request", () => {
  assertEquals(ffmpegArgs(parseSource("videos/a:b.mp4"), { ...OPTIONS, loop: true }), [
    ...HEAD,
    ...["-re", "-stream_loop", "-1", "-i", "file:videos/a:b.mp4"],
    ...MAP,
    ...["-vf", "scale=256:256:flags=bilinear"],
    ...TAIL,
  ]);
  assertEquals(
    ffmpegArgs(parseSource("/v/x.mkv"), { ...OPTIONS, realtime: false }).slice(5, 7),
    ["-i", "file:/v/x.mkv"],
  );
});

Deno.test("ffmpegArgs() reads lavfi graphs and V4L2 devices", () => {
  assertEquals(ffmpegArgs(parseSource("lavfi:testsrc=size=640x480:rate=10"), OPTIONS), [
    ...HEAD,
    ...["-re", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=10"],
    ...MAP,
    ...["-vf", "scale=256:256:flags=bilinear"],
    ...TAIL,
  ]);
  assertEquals(ffmpegArgs(parseSource("/dev/video0"), OPTIONS), [
    ...HEAD,
    ...["-f", "v4l2", "-i", "/dev/video0"],
    ...MAP,
    ...["-vf", "scale=256:256:flags=bilinear"],
    ...TAIL,
  ]);
});

Deno.test("ffmpegArgs() puts hardware decoding before -i", () => {
  const argv = ffmpegArgs(parseSource("rtsp://cam/s1"), {
    ...OPTIONS,
    hwaccel: {
      type: "cuda",
      device: "0",
      decoder: "h264_cuvid",
      args: ["-extra_hw_frames", "2"],
    },
  });
  const i = argv.indexOf("-i");
  assertEquals(argv.slice(i - 8, i + 2), [
    ...["-hwaccel", "cuda", "-hwaccel_device", "0", "-c:v", "h264_cuvid"],
    ...["-extra_hw_frames", "2", "-i", "rtsp://cam/s1"],
  ]);
});

Deno.test("ffmpegArgs() passes input options through before hardware decoding", () => {
  const argv = ffmpegArgs(parseSource("/dev/video0"), {
    ...OPTIONS,
    inputArgs: ["-input_format", "mjpeg", "-video_size", "1280x720"],
    hwaccel: { type: "vaapi" },
  });
  assertEquals(argv.slice(5, 15), [
    ...["-f", "v4l2", "-input_format", "mjpeg", "-video_size", "1280x720"],
    ...["-hwaccel", "vaapi", "-i", "/dev/video0"],
  ]);
  assertEquals(
    ffprobeArgs(parseSource("/dev/video0"), {
      rtspTransport: "tcp",
      inputArgs: ["-input_format", "mjpeg"],
    }),
    [
      ...["-hide_banner", "-loglevel", "error", "-f", "v4l2", "-input_format", "mjpeg"],
      ...["-i", "/dev/video0"],
      ...["-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "json"],
    ],
  );
});

Deno.test("ffmpegArgs() in exact mode pins the source size or keeps the ROI size", () => {
  const src = parseSource("lavfi:testsrc");
  const pinned = ffmpegArgs(src, {
    ...OPTIONS,
    resize: "exact",
    sourceSize: { width: 1920, height: 1080 },
    fps: 2.5,
  });
  assertEquals(pinned.slice(-7, -5), ["-vf", "fps=2.5,scale=1920:1080:flags=bilinear"]);
  const roi = { x: 1, y: 3, width: 301, height: 201 };
  const cropped = ffmpegArgs(src, { ...OPTIONS, resize: "exact", roi });
  assertEquals(cropped.slice(-7, -5), ["-vf", "crop=301:201:1:3:exact=1"]);
  assertEquals(ffmpegFrameSize({ ...OPTIONS, resize: "exact", roi }), { width: 301, height: 201 });
  assertEquals(ffmpegFrameSize({ ...OPTIONS, roi }), MODEL);
});

Deno.test("ffmpegArgs() rejects bad options", () => {
  const src = parseSource("lavfi:testsrc");
  assertThrows(
    () => ffmpegArgs(src, { ...OPTIONS, resize: "exact" }),
    TypeError,
    "Cannot build ffmpeg arguments: exact resize needs the source size",
  );
  assertThrows(
    () => ffmpegArgs(src, { ...OPTIONS, width: 0, height: 1 }),
    RangeError,
    "width must be",
  );
  assertThrows(() => ffmpegArgs(src, { ...OPTIONS, fps: 0 }), RangeError, "fps must be positive");
  assertThrows(
    () => ffmpegArgs(src, { ...OPTIONS, roi: { x: -1, y: 0, width: 2, height: 2 } }),
    RangeError,
    "roi.x must be",
  );
  assertThrows(
    () => ffmpegArgs(parseSource("rtsps://cam/1"), { ...OPTIONS, rtspTransport: "udp" }),
    RangeError,
    "rtsps:// needs rtspTransport tcp",
  );
});

Deno.test("ffprobeArgs() probes the first video stream with the same input options", () => {
  assertEquals(
    ffprobeArgs(parseSource("rtsp://cam/s1"), { rtspTransport: "tcp", ioTimeoutMs: 1000 }),
    [
      ...["-hide_banner", "-loglevel", "error"],
      ...["-rtsp_transport", "tcp", "-timeout", "1000000", "-i", "rtsp://cam/s1"],
      ...["-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "json"],
    ],
  );
  assertEquals(ffprobeArgs(parseSource("lavfi:testsrc"), { rtspTransport: "tcp" }).slice(3, 7), [
    "-f",
    "lavfi",
    "-i",
    "testsrc",
  ]);
});
