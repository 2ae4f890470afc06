/**
 * The streaming service end to end with real components: GStreamer's RTSP server serving
 * two streams, ffmpeg, mosquitto, the ONNX engine, and an MQTT subscriber checking what a
 * consumer would see.
 */
import { NoopEngine } from "../../src/infer/noop_engine.ts";
import { join } from "node:path";
import { createLogger } from "../../src/core/log.ts";
import { parsePipeline } from "../../src/config/mod.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { decodeMapPng } from "../../src/publish/map_png.ts";
import { type ReceivedMessage, TestSubscriber } from "../support/mqtt_subscriber.ts";
import { runCli } from "../../src/cli/commands.ts";
import { assertEquals, assertOk } from "../assert.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import { freePort, rtspServerAvailable, RtspTestServer } from "../support/rtsp.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";

const HAS_RTSP = await rtspServerAvailable();
const MISSING = [
  ...(HAS_MOSQUITTO ? [] : ["mosquitto"]),
  ...(HAS_RTSP ? [] : ["GStreamer RTSP server"]),
  ...(HAS_FFMPEG ? [] : ["ffmpeg"]),
];
const SKIP = MISSING.length > 0
  ? ` (skipped: ${MISSING.join(", ")} missing; .ci/run installs them)`
  : "";

function json(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.text) as Record<string, unknown>;
}

function quietLog(lines: string[] = []) {
  return createLogger({ sink: (l) => lines.push(l) });
}

/** A pipeline file for the tests: built-in model, every frame anomalous (fixed threshold). */
function pipelineYaml(o: { cameras: string; mqtt: string; prefix: string }): string {
  return `
cameras:
${o.cameras}
model:
  threshold: { policy: fixed, value: 0 }
batching: { max_batch: 2, max_wait_ms: 50, queue_per_camera: 1 }
mqtt:
  url: ${o.mqtt}
  client_id: it-${o.prefix}
  topic_prefix: ${o.prefix}
  map: { every_n: 1, width: 32, height: 32 }
  events: { min_duration_ms: 300, update_interval_ms: 500 }
  stats_interval_ms: 1000
http: { port: 0 }
`;
}

function rtspCamera(name: string, url: string): string {
  return `  - name: ${name}
    url: ${url}
    fps: 2
    stall_timeout_ms: 4000
    backoff: { initial_ms: 200, max_ms: 1000 }`;
}

Deno.test({
  name: `Pipeline() serves two RTSP cameras to MQTT with the documented schema${SKIP}`,
  ignore: MISSING.length > 0,
  async fn() {
    await using rtsp = await RtspTestServer.start({ mounts: ["cam1", "cam2"], fps: 10 });
    await using broker = await Mosquitto.start();
    const config = parsePipeline(
      pipelineYaml({
        cameras: [rtspCamera("cam1", rtsp.url("cam1")), rtspCamera("cam2", rtsp.url("cam2"))]
          .join("\n"),
        mqtt: broker.url,
        prefix: "it",
      }),
      "it.yaml",
    );
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["it/#"] });
    // The no-op engine (score 1 for every frame): this test is about RTSP ingest, MQTT and
    // HTTP; with the real engine the 2-core CPU saturates and ffmpeg lags behind the stream,
    // so after the server dies it drains that lag for minutes. The ONNX engine is tested
    // end to end with lavfi cameras (below and in the retraining tests).
    await using pipeline = await Pipeline.start(config, {
      logger: quietLog(),
      engine: new NoopEngine({ score: 1 }),
    });

    // Scores from both cameras, with the documented fields.
    for (const cam of ["cam1", "cam2"]) {
      const [m] = await sub.waitFor((m) => m.topic === `it/${cam}/score`, { timeoutMs: 60_000 });
      const s = json(m!);
      assertEquals(s.v, 1);
      assertEquals(s.camera, cam);
      for (const k of ["seq", "captured_at", "score", "threshold", "anomalous", "model_version"]) {
        assertOk(k in s, `score payload lacks ${k}: ${m!.text}`);
      }
      assertEquals(typeof s.score, "number");
      assertEquals(s.threshold, 0);
      assertEquals(s.anomalous, true);
      assertEquals(s.model_version, "synthetic-s-seed0");
      assertOk((s.latency_ms as number) >= 0);
    }
    // A map that decodes to the configured size.
    const [mapMsg] = await sub.waitFor((m) => m.topic === "it/cam1/map", { timeoutMs: 30_000 });
    const map = decodeMapPng(mapMsg!.payload);
    assertEquals(map.values.length, 32 * 32);
    assertEquals(map.header.camera, "cam1");
    // An event once the anomaly lasted min_duration_ms.
    const [ev] = await sub.waitFor(
      (m) => m.topic === "it/cam1/event" && json(m).type === "start",
      { timeoutMs: 30_000 },
    );
    const e = json(ev!);
    for (const k of ["event_id", "start_seq", "peak_score"]) assertOk(k in e, ev!.text);
    // Status (retained) and availability.
    // Generous timeouts: CI machines may be loaded; these assert arrival, not speed.
    await sub.waitFor((m) => m.topic === "it/cam2/status" && json(m).state === "online", {
      timeoutMs: 20_000,
    });
    await sub.waitFor((m) => m.topic === "it/available" && m.text === "online", {
      timeoutMs: 20_000,
    });
    await sub.waitFor((m) => m.topic === "it/stats", { timeoutMs: 20_000 });

    // HTTP.
    const status = await (await fetch(`${pipeline.httpUrl}/status`)).json() as {
      cameras: { camera: string; state: string }[];
    };
    assertEquals(status.cameras.map((c) => c.state), ["online", "online"]);
    const metrics = await (await fetch(`${pipeline.httpUrl}/metrics`)).text();
    assertOk(metrics.includes('efficientad_frames_total{camera="cam1"}'), metrics.slice(0, 500));
    const health = await fetch(`${pipeline.httpUrl}/healthz`);
    assertEquals([health.status, await health.text()], [200, "ok"]);

    // Kill the RTSP server: both cameras go reconnecting, the service stays up.
    const mark = sub.messages.length;
    await rtsp.stop();
    // ffmpeg first drains what it had buffered: on a loaded machine it lags behind the
    // stream and the drain takes as long as the lag. Frames still arriving are progress;
    // once they stop, the camera must say reconnecting.
    await sub.waitFor((m) => m.topic === "it/cam1/status" && json(m).state === "reconnecting", {
      from: mark,
      timeoutMs: 45_000,
      progress: (m) => m.topic === "it/cam1/score",
    });
    const health2 = await fetch(`${pipeline.httpUrl}/healthz`);
    assertEquals([health2.status, await health2.text()], [200, "ok"]);
    // Bring it back: online again, scores flow again.
    const back = sub.messages.length; // before the restart: the camera may be back at once
    await rtsp.restart();
    await sub.waitFor((m) => m.topic === "it/cam1/status" && json(m).state === "online", {
      from: back,
      timeoutMs: 45_000,
    });
    await sub.waitFor((m) => m.topic === "it/cam1/score", { from: back, timeoutMs: 45_000 });
    const cam1 = pipeline.status().cameras.find((c) => c.camera === "cam1")!;
    assertOk(cam1.reconnects + cam1.stalls >= 1, JSON.stringify(cam1));
  },
});

Deno.test({
  name:
    `Pipeline() keeps inspecting while mosquitto restarts and delivers the queued events${SKIP}`,
  ignore: MISSING.length > 0,
  async fn() {
    await using broker = await Mosquitto.start({ persistence: true });
    const config = parsePipeline(
      pipelineYaml({
        cameras: `  - name: lav
    url: "lavfi:testsrc2=size=320x240:rate=4"
    fps: 2`,
        mqtt: broker.url,
        prefix: "rs",
      }),
      "rs.yaml",
    );
    const persistent = { clientId: "it-rs-sub", clean: false };
    let sub = await TestSubscriber.connect(broker.url, {
      topics: ["rs/#"],
      qos: 1,
      client: persistent,
    });
    try {
      await using pipeline = await Pipeline.start(config, { logger: quietLog() });
      await sub.waitFor((m) => m.topic === "rs/lav/event" && json(m).type === "start", {
        timeoutMs: 30_000,
      });
      await sub.close();
      await broker.stop();
      const framesBefore = pipeline.status().inference.frames;
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 2500));
      // Inference went on without a broker.
      assertOk(pipeline.status().inference.frames > framesBefore);
      assertOk(pipeline.status().mqtt.queued > 0);
      await broker.restart();
      sub = await TestSubscriber.connect(broker.url, {
        topics: ["rs/#"],
        qos: 1,
        client: persistent,
      });
      // Event updates published while the broker was down arrive now (QoS 1, queued).
      const late = await sub.waitFor(
        (m) =>
          m.topic === "rs/lav/event" && json(m).type === "update" &&
          (json(m).started_at_ms as number) + (json(m).duration_ms as number) >= downAt,
        { timeoutMs: 20_000 },
      );
      assertOk(late.length >= 1);
      assertEquals(pipeline.status().mqtt.dropped, 0);
    } finally {
      await sub.close();
    }
  },
});

Deno.test({
  name: `runCli(run) refuses a malformed pipeline before starting anything${SKIP}`,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const file = join(dir, "bad.yaml");
      await Deno.writeTextFile(
        file,
        "cameras:\n  - name: a\n    url: lavfi:testsrc2\n    fsp: 5\nmqtt:\n  qos: 7\n",
      );
      const lines: string[] = [];
      assertEquals(await runCli(["run", file], quietLog(lines)), 2);
      const text = lines.join("\n");
      assertOk(text.includes("cameras[0].fsp (line 4): unknown key"), text);
      assertOk(text.includes("mqtt.qos (line 6)"), text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `Pipeline() reports an unreachable camera and keeps serving the others${SKIP}`,
  ignore: MISSING.length > 0,
  async fn() {
    await using broker = await Mosquitto.start();
    const closed = freePort();
    const config = parsePipeline(
      pipelineYaml({
        cameras: `  - name: good
    url: "lavfi:testsrc2=size=320x240:rate=4"
    fps: 2
  - name: gone
    url: rtsp://admin:hunter2@127.0.0.1:${closed}/x
    backoff: { initial_ms: 200, max_ms: 1000 }`,
        mqtt: broker.url,
        prefix: "ur",
      }),
      "ur.yaml",
    );
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["ur/#"] });
    const lines: string[] = [];
    await using pipeline = await Pipeline.start(config, { logger: quietLog(lines) });
    const [st] = await sub.waitFor(
      (m) => m.topic === "ur/gone/status" && json(m).state === "reconnecting",
      { timeoutMs: 20_000 },
    );
    assertOk(String(json(st!).last_error ?? "").length > 0, st!.text);
    await sub.waitFor((m) => m.topic === "ur/good/score", { count: 2, timeoutMs: 30_000 });
    const all = sub.messages.map((m) => m.text).join("\n") + lines.join("\n");
    assertEquals(all.includes("hunter2"), false);
    assertOk(pipeline.status().cameras.find((c) => c.camera === "gone")!.reconnects >= 1);
  },
});

Deno.test({
  name: `Pipeline() reads a video file named relative to the pipeline file${SKIP}`,
  ignore: !HAS_FFMPEG,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const made = await new Deno.Command("ffmpeg", {
        args: [
          "-v",
          "error",
          "-f",
          "lavfi",
          "-i",
          "testsrc2=size=320x240:rate=5",
          "-t",
          "2",
          "-y",
          join(dir, "clip.mp4"),
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      assertOk(made.success, "ffmpeg could not make the test clip");
      const file = join(dir, "line.yaml");
      await Deno.writeTextFile(
        file,
        `cameras:
  - name: clip
    url: clip.mp4
mqtt:
  embedded: { port: 0 }
http: { enabled: false }
`,
      );
      const { loadPipeline } = await import("../../src/config/mod.ts");
      const config = await loadPipeline(file); // the working directory is not `dir`
      await using pipeline = await Pipeline.start(config, { logger: quietLog() });
      const until = Date.now() + 20_000;
      while (pipeline.status().inference.frames < 2 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const cam = pipeline.status().cameras[0]!;
      assertOk(pipeline.status().inference.frames >= 2, JSON.stringify(cam));
      assertEquals(cam.camera, "clip");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
