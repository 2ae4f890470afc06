/**
 * FfmpegCamera against real processes: ffmpeg reading lavfi sources, files and a real
 * RTSP server (tools/rtsp_server.py). Timeouts and backoffs are short so the file runs in
 * well under a minute; the sanitizers check that no process, pipe or timer outlives a test.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { freePort, rtspServerAvailable, RtspTestServer } from "../../tests/support/rtsp.ts";
import type { CameraState, CameraStatus, Frame } from "../core/frame.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { imageToTensor, tensorToImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import { parseSource } from "../core/source.ts";
import { FfmpegCamera, type FfmpegCameraOptions } from "./ffmpeg_camera.ts";

const FAST = {
  resize: "ffmpeg",
  loop: false,
  rtspTransport: "tcp",
  stallTimeoutMs: 3000,
  startTimeoutMs: 8000,
  backoff: { initialMs: 50, maxMs: 400 },
  killGraceMs: 1000,
} as const;

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: "debug", sink: (l) => lines.push(l) }), lines };
}

/** A camera on a source given as a string (parsed as the pipeline config would). */
function camera(
  options: Partial<Omit<FfmpegCameraOptions, "source">> & { source: string },
): FfmpegCamera {
  return new FfmpegCamera({
    name: "cam",
    width: 32,
    height: 24,
    logger: capture().logger,
    ...FAST,
    ...options,
    source: parseSource(options.source),
  });
}

/** Polls `check` every 20 ms until it is truthy; throws after `timeoutMs`. */
async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads `n` frames, failing after `timeoutMs`. */
async function readFrames(
  reader: ReadableStreamDefaultReader<Frame>,
  n: number,
  timeoutMs = 10_000,
): Promise<Frame[]> {
  const frames: Frame[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out reading ${n} frames`)), timeoutMs);
  });
  try {
    while (frames.length < n) {
      const r = await Promise.race([reader.read(), timeout]);
      if (r.done) throw new Error(`The stream closed after ${frames.length} frames`);
      frames.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return frames;
}

/** The first frame ffmpeg makes of a lavfi graph, at its own size. */
async function referenceFrame(graph: string): Promise<Uint8Array> {
  const out = await new Deno.Command("ffmpeg", {
    args: [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", graph],
      ...["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return out.stdout;
}

Deno.test("FfmpegCamera() reads model-size frames from lavfi with increasing seq", async () => {
  const statuses: CameraState[] = [];
  await using cam = camera({
    source: "lavfi:testsrc=size=160x120:rate=25",
    fps: 20,
    onStatus: (s) => statuses.push(s.state),
  });
  assertEquals(cam.status().state, "starting");
  const reader = cam.readable.getReader();
  const frames = await readFrames(reader, 5);
  for (const [i, f] of frames.entries()) {
    assertEquals([f.camera, f.seq, f.width, f.height, f.rgb.length], [
      "cam",
      i,
      32,
      24,
      32 * 24 * 3,
    ]);
    if (i > 0) assertOk(f.capturedAt >= frames[i - 1]!.capturedAt);
  }
  const status = cam.status();
  assertEquals([status.state, status.reconnects, status.stalls], ["online", 0, 0]);
  assertOk(status.framesIn >= 5 && status.lastFrameAt !== undefined);
  await cam.close();
  assertEquals(cam.status().state, "offline");
  assertEquals(statuses, ["online", "offline"]);
  // Frames still queued are delivered, then the stream ends.
  for (let r = await reader.read(); !r.done; r = await reader.read()) assertOk(r.value.seq >= 5);
});

Deno.test("FfmpegCamera() in exact mode resizes with PyTorch's bilinear", async () => {
  const graph = "smptebars=size=96x72:rate=10";
  const src = await referenceFrame(graph);
  const expected = tensorToImage(
    resizeBilinear(imageToTensor({ width: 96, height: 72, data: src }), [30, 40]),
  ).data;
  {
    await using cam = camera({ source: `lavfi:${graph}`, width: 40, height: 30, resize: "exact" });
    const [frame] = await readFrames(cam.readable.getReader(), 1);
    assertEquals(frame!.rgb, expected);
    // ffprobe's command line and ffmpeg's are both in the diagnosis ring.
    assertOk(cam.stderrTail().some((l) => l.includes("scale=96:72:flags=bilinear")));
  }
  {
    // With an ROI the crop fixes the size: no probe; odd sizes stay exact.
    await using cam = camera({
      source: "lavfi:color=c=red:size=64x48:rate=10",
      width: 9,
      height: 7,
      resize: "exact",
      roi: { x: 3, y: 5, width: 21, height: 13 },
    });
    const [frame] = await readFrames(cam.readable.getReader(), 1);
    assertEquals(frame!.rgb.length, 9 * 7 * 3);
    for (const p of [0, 31, 62]) {
      const [r, g, b] = frame!.rgb.subarray(p * 3, p * 3 + 3);
      assertOk(r! >= 250 && g! <= 5 && b! <= 5, `pixel ${p} is ${r},${g},${b}, not red`);
    }
  }
});

Deno.test("FfmpegCamera() never blocks ffmpeg: a slow consumer gets the newest frame", async () => {
  await using cam = camera({
    source: "lavfi:testsrc=size=32x24:rate=200",
    realtime: false,
    queueSize: 2,
  });
  await waitFor(() => cam.status().framesIn >= 50, 10_000, "50 frames");
  const status = cam.status();
  assertOk(status.framesDropped >= status.framesIn - 3, `dropped ${status.framesDropped}`);
  const [frame] = await readFrames(cam.readable.getReader(), 1);
  assertOk(frame!.seq >= 40, `got seq ${frame!.seq}, an old frame`);
});

Deno.test("FfmpegCamera() restarts a missing file with backoff, counting reconnects", async () => {
  const { logger, lines } = capture();
  const statuses: CameraStatus[] = [];
  await using cam = camera({
    source: "/nonexistent/line-1.mp4",
    logger,
    onStatus: (s) => statuses.push(s),
  });
  await waitFor(() => cam.status().reconnects >= 3, 10_000, "3 reconnects");
  const status = cam.status();
  assertEquals(status.state, "reconnecting");
  assertEquals(status.framesIn, 0);
  assertOk(
    status.lastError?.startsWith("Cannot read camera cam (/nonexistent/line-1.mp4): ffmpeg exited"),
    status.lastError,
  );
  assertOk(cam.stderrTail().some((l) => l.includes("No such file or directory")));
  assertOk(lines.some((l) => l.includes("camera reconnecting") && l.includes("retryInMs=")));
  // onStatus hears every scheduled restart, with the counters.
  assertEquals(statuses.slice(0, 3).map((s) => [s.state, s.reconnects]), [
    ["reconnecting", 1],
    ["reconnecting", 2],
    ["reconnecting", 3],
  ]);
});

Deno.test("FfmpegCamera() starts the backoff over after a stable run", async () => {
  // Each run ends after 0.4 s of frames: longer than resetAfterMs, so no delay grows.
  const delays = async (resetAfterMs: number): Promise<number[]> => {
    const { logger, lines } = capture();
    await using cam = camera({
      source: "lavfi:testsrc=size=32x24:rate=25:duration=0.4",
      backoff: { initialMs: 50, maxMs: 5000, jitter: 0, resetAfterMs },
      logger,
    });
    await waitFor(() => cam.status().reconnects >= 3, 10_000, "3 reconnects");
    return lines.flatMap((l) => /retryInMs=(\d+)/.exec(l)?.[1] ?? []).map(Number).slice(0, 3);
  };
  assertEquals(await delays(100), [50, 50, 50]);
  assertEquals(await delays(10_000), [50, 100, 200]);
});

Deno.test("FfmpegCamera() redacts the credentials of an unreachable RTSP camera", async () => {
  const { logger, lines } = capture();
  const port = freePort();
  await using cam = camera({ source: `rtsp://admin:hunter2@127.0.0.1:${port}/x`, logger });
  await waitFor(() => cam.status().reconnects >= 2, 10_000, "2 reconnects");
  const status = cam.status();
  assertEquals(status.state, "reconnecting");
  assertOk(status.lastError?.includes(`rtsp://***:***@127.0.0.1:${port}/x`), status.lastError);
  assertOk(status.lastError?.includes("Connection refused"), status.lastError);
  const everything = [status.lastError, cam.source, ...cam.stderrTail(), ...lines].join("\n");
  assertEquals(everything.includes("hunter2"), false, everything);
  assertOk(everything.includes("rtsp://***:***@"));
});

Deno.test("FfmpegCamera() watchdog restarts a stalled ffmpeg and counts a stall", async () => {
  // One frame a second with a 400 ms watchdog: every run stalls after its first frame.
  await using cam = camera({
    source: "lavfi:testsrc=size=32x24:rate=1",
    stallTimeoutMs: 400,
    startTimeoutMs: 4000,
  });
  const reader = cam.readable.getReader();
  const [a, b] = await readFrames(reader, 2, 10_000);
  const status = cam.status();
  assertOk(status.stalls >= 1, `stalls ${status.stalls}`);
  assertEquals(status.reconnects, 0);
  assertOk(status.lastError?.includes("no frame for 400 ms (stall)"), status.lastError);
  assertEquals([a!.seq, b!.seq], [0, 1]); // seq is not reset by restarts
});

Deno.test("FfmpegCamera() stops on abort and leaves nothing running", async () => {
  const abort = new AbortController();
  const cam = camera({ source: "lavfi:testsrc=size=32x24:rate=25", signal: abort.signal });
  const reader = cam.readable.getReader();
  await readFrames(reader, 1);
  abort.abort();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    // drain what was queued
  }
  await cam.close();
  assertEquals(cam.status().state, "offline");
  // Already aborted: never starts.
  const never = camera({ source: "lavfi:testsrc", signal: AbortSignal.abort() });
  await never.close();
  assertEquals([never.status().state, never.status().framesIn], ["offline", 0]);
  // Cancelling the stream disposes of the camera too.
  const cancelled = camera({ source: "lavfi:testsrc=size=32x24:rate=25" });
  await cancelled.readable.cancel();
  assertEquals(cancelled.status().state, "offline");
});

Deno.test("FfmpegCamera() SIGKILLs an ffmpeg that ignores SIGTERM", async () => {
  // A stand-in for a wedged ffmpeg: ignores SIGTERM, writes nothing.
  const fake = await Deno.makeTempFile({ prefix: "fake-ffmpeg-", suffix: ".sh" });
  try {
    await Deno.writeTextFile(fake, "#!/bin/sh\ntrap '' TERM\nexec sleep 30\n");
    await Deno.chmod(fake, 0o755);
    const cam = camera({ source: "lavfi:testsrc", ffmpegPath: fake, killGraceMs: 200 });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await cam.close();
    const ms = performance.now() - t0;
    assertOk(ms >= 150 && ms < 2000, `close took ${ms} ms`);
    assertEquals(cam.status().state, "offline");
  } finally {
    await Deno.remove(fake);
  }
});

Deno.test("FfmpegCamera() gives up after giveUpAfter fruitless restarts when asked", async () => {
  const { logger, lines } = capture();
  await using cam = camera({ source: "/nonexistent/x.mp4", giveUpAfter: 2, logger });
  const reader = cam.readable.getReader();
  assertEquals((await reader.read()).done, true); // the stream closes when it gives up
  assertEquals([cam.status().state, cam.status().reconnects], ["offline", 2]);
  assertOk(lines.some((l) => l.includes("camera offline: giving up")));
});

const haveRtsp = await rtspServerAvailable();

Deno.test({
  name: "FfmpegCamera() reads two cameras from a real RTSP server",
  ignore: !haveRtsp,
  async fn() {
    const { logger, lines } = capture();
    await using server = await RtspTestServer.start({
      mounts: ["cam1", "cam2"],
      user: "admin",
      password: "s3cret-pw",
    });
    await using cam1 = camera({ name: "cam1", source: server.url("cam1"), logger });
    await using cam2 = camera({ name: "cam2", source: server.url("cam2"), logger });
    const [f1, f2] = await Promise.all([
      readFrames(cam1.readable.getReader(), 3),
      readFrames(cam2.readable.getReader(), 3),
    ]);
    for (const [name, frames] of [["cam1", f1], ["cam2", f2]] as const) {
      assertEquals(frames.map((f) => f.camera), [name, name, name]);
      assertEquals(frames[0]!.seq, 0);
      assertOk(frames[0]!.seq < frames[1]!.seq && frames[1]!.seq < frames[2]!.seq);
      assertEquals(frames[2]!.rgb.length, 32 * 24 * 3);
    }
    // Different test patterns on the two mounts.
    assertOk(f1[2]!.rgb.some((v, i) => v !== f2[2]!.rgb[i]));
    assertEquals([cam1.status().state, cam2.status().state], ["online", "online"]);
    const everything = [...lines, ...cam1.stderrTail(), ...cam2.stderrTail()].join("\n");
    assertEquals(everything.includes("s3cret-pw"), false, everything);
  },
});

Deno.test({
  name: "FfmpegCamera() goes reconnecting when the RTSP server dies and online when it is back",
  ignore: !haveRtsp,
  async fn() {
    await using server = await RtspTestServer.start({ mounts: ["cam1"] });
    const states: CameraState[] = [];
    await using cam = camera({
      source: server.url("cam1"),
      onStatus: (s) => states.push(s.state),
    });
    const reader = cam.readable.getReader();
    const before = await readFrames(reader, 2);
    await server.stop();
    await waitFor(() => cam.status().state === "reconnecting", 8000, "reconnecting");
    await new Promise((r) => setTimeout(r, 300)); // a few refused reconnects
    assertOk(cam.status().reconnects >= 1);
    await server.restart();
    await waitFor(() => cam.status().state === "online", 15_000, "online again");
    const after = await readFrames(reader, 10);
    assertOk(after.at(-1)!.seq > before.at(-1)!.seq);
    assertEquals(states.slice(0, 2), ["online", "reconnecting"]);
    assertEquals(states.at(-1), "online");
  },
});

Deno.test({
  name: "FfmpegCamera() counts a stall when the RTSP server freezes",
  ignore: !haveRtsp,
  async fn() {
    await using server = await RtspTestServer.start({ mounts: ["cam1"] });
    await using cam = camera({
      source: server.url("cam1"),
      stallTimeoutMs: 500,
      inputArgs: ["-analyzeduration", "500000"], // connect in ~1 s instead of ~3 s
    });
    const reader = cam.readable.getReader();
    await readFrames(reader, 2);
    server.pause();
    try {
      await waitFor(() => cam.status().stalls >= 1, 5000, "a stall");
    } finally {
      server.resume();
    }
    await waitFor(() => cam.status().state === "online", 15_000, "online again");
    await readFrames(reader, 2);
    assertEquals(cam.status().reconnects, 0);
  },
});
