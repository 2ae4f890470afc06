/**
 * The publisher against a real mosquitto (started per test on a free port) and a real
 * mqtt.js subscriber.
 */
import { join } from "node:path";
import type { CameraStatus } from "../core/frame.ts";
import type { PipelineStatus } from "../core/status.ts";
import { tensor } from "../core/tensor.ts";
import { decodeImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  freePort,
  HAS_MOSQUITTO,
  HAS_MOSQUITTO_PASSWD,
  makeTestCertificates,
  Mosquitto,
  MOSQUITTO_PASSWD_BIN,
  runCommand,
} from "../../tests/support/mosquitto.ts";
import { HAS_OPENSSL } from "../../tests/support/openssl.ts";
import { TcpProxy } from "../../tests/support/tcp_proxy.ts";
import { decodeMapPng } from "./map_png.ts";
import type { EventMessage, ScoreMessage, StatsMessage, StatusMessage } from "./payloads.ts";
import { MqttPublisher } from "./publisher.ts";
import {
  captureLog,
  deadline,
  DEFAULT_REJECT_UNAUTHORIZED,
  publisherOptions,
  syntheticScoredFrame,
  testPublisher,
} from "./_test_utils.ts";
import {
  payloadJson,
  persistentSession,
  type ReceivedMessage,
  TestSubscriber,
} from "../../tests/support/mqtt_subscriber.ts";

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

const capture = captureLog;
const publisher = testPublisher;
const json = payloadJson;

const SCORE_KEYS = [
  "anomalous",
  "batch_size",
  "camera",
  "captured_at",
  "captured_at_ms",
  "inference_ms",
  "latency_ms",
  "model_precision",
  "model_version",
  "normalized_score",
  "score",
  "seq",
  "threshold",
  "v",
];

const EVENT_KEYS = [
  "camera",
  "duration_ms",
  "end_seq",
  "ended_at",
  "ended_at_ms",
  "event_id",
  "frames",
  "last_seq",
  "model_precision",
  "model_version",
  "off_threshold",
  "on_threshold",
  "peak_normalized_score",
  "peak_score",
  "peak_seq",
  "reason",
  "start_seq",
  "started_at",
  "started_at_ms",
  "threshold",
  "type",
  "v",
];

const STATUS_KEYS = [
  "camera",
  "frames_dropped",
  "frames_in",
  "last_error",
  "last_frame_at",
  "last_frame_at_ms",
  "reconnects",
  "stalls",
  "state",
  "time",
  "time_ms",
  "v",
];

function cameraStatus(state: CameraStatus["state"], framesIn = 0): CameraStatus {
  return { camera: "cam-1", state, framesIn, framesDropped: 0, reconnects: 0, stalls: 0 };
}

/** Frames every 100 ms with these normalised scores (raw score = 1 + level). */
function frames(levels: readonly number[], camera = "cam-1", firstSeq = 0) {
  return levels.map((level, i) =>
    syntheticScoredFrame({
      camera,
      seq: firstSeq + i,
      capturedAt: T0 + (firstSeq + i) * 100,
      score: 1 + level,
      normalizedScore: level,
      threshold: 1.5,
    })
  );
}

Deno.test({
  name:
    "MqttPublisher() publishes score, map, event, status and available with the documented schema",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["efficientad/#"] });
    const clock = { now: T0 + 1000 };
    const pub = publisher(broker.url, {
      qos: 0,
      map: { width: 32, height: 24 },
      events: { minDurationMs: 200, updateIntervalMs: 0 },
      now: () => clock.now,
    });
    using limit = deadline(5000);
    await pub.waitConnected(limit);
    assertEquals(pub.protocolVersion, 5);
    pub.publishStatus(cameraStatus("online"));
    const scored = frames([0.1, 0.7, 0.8, 0.9, 0.2]);
    for (const s of scored) pub.publishFrame(s);
    await pub.flush(limit);

    const [online] = await sub.waitFor((m) => m.topic === "efficientad/available");
    assertEquals(online!.text, "online");

    const scores = await sub.waitFor((m) => m.topic === "efficientad/cam-1/score", { count: 5 });
    const first = json<ScoreMessage>(scores[0]!);
    assertEquals(Object.keys(first).sort(), SCORE_KEYS);
    assertEquals(first, {
      v: 1,
      camera: "cam-1",
      seq: 0,
      captured_at: new Date(T0).toISOString(),
      captured_at_ms: T0,
      score: 1.1,
      threshold: 1.5,
      normalized_score: 0.1,
      anomalous: false,
      model_version: "test-model@1",
      model_precision: "fp32",
      latency_ms: 1000,
      batch_size: 1,
      inference_ms: 5,
    });
    assertEquals(scores.map((m) => json<ScoreMessage>(m).seq), [0, 1, 2, 3, 4]);
    assertEquals(scores[0]!.properties?.contentType, "application/json");
    assertOk(scores.every((m) => !m.retain && m.qos === 0));

    const maps = await sub.waitFor((m) => m.topic === "efficientad/cam-1/map", { count: 5 });
    maps.forEach((m, i) => {
      const img = decodeImage(m.payload, m.topic);
      assertEquals([img.width, img.height], [32, 24]);
      const { header, values } = decodeMapPng(m.payload, m.topic);
      assertEquals([header.seq, header.camera, header.width, header.height], [i, "cam-1", 32, 24]);
      const user = m.properties?.userProperties ?? {};
      assertEquals(
        [user.min, user.max, user.seq, user.camera, user.encoding],
        [String(header.min), String(header.max), String(i), "cam-1", "png-gray8-linear"],
      );
      assertEquals(m.properties?.contentType, "image/png");
      const expected = resizeBilinear(scored[i]!.map, [24, 32]).data;
      const range = header.max - header.min;
      for (let k = 0; k < expected.length; k++) {
        assertAlmostEquals(values[k]!, expected[k]!, range / 255);
      }
    });

    const events = await sub.waitFor((m) => m.topic === "efficientad/cam-1/event", { count: 2 });
    const [start, end] = events.map((m) => json<EventMessage>(m));
    assertEquals(Object.keys(start!).sort(), EVENT_KEYS);
    assertOk(events.every((m) => m.qos === 1 && !m.retain));
    assertEquals(
      [start!.type, start!.start_seq, start!.last_seq, start!.end_seq, start!.duration_ms],
      ["start", 1, 3, null, 200],
    );
    assertEquals(
      [end!.type, end!.event_id, end!.start_seq, end!.end_seq, end!.duration_ms, end!.reason],
      ["end", start!.event_id, 1, 3, 200, "cleared"],
    );
    assertEquals([end!.peak_normalized_score, end!.peak_score, end!.peak_seq], [0.9, 1.9, 3]);
    assertEquals([end!.threshold, end!.on_threshold, end!.off_threshold], [1.5, 0.5, 0.4]);

    const [status] = await sub.waitFor((m) => m.topic === "efficientad/cam-1/status");
    assertEquals(Object.keys(json<StatusMessage>(status!)).sort(), STATUS_KEYS);
    assertEquals(json<StatusMessage>(status!).state, "online");

    await pub.close();
    const offline = await sub.waitFor((m) => m.topic === "efficientad/available", { count: 2 });
    assertEquals(offline[1]!.text, "offline");
    assertEquals(pub.counters, {
      connected: false,
      queued: 0,
      published: 5 + 5 + 2 + 1 + 2, // scores, maps, events, status, online + offline
      dropped: 0,
      reconnects: 0,
    });

    // Someone who subscribes later gets the retained state.
    await using late = await TestSubscriber.connect(broker.url, { topics: ["efficientad/#"] });
    const retained = await late.waitFor((m) => m.retain, { count: 2 });
    assertEquals(
      retained.map((m) => m.topic).sort(),
      ["efficientad/available", "efficientad/cam-1/status"],
    );
    assertEquals(late.on("efficientad/available")[0]!.text, "offline");
  },
});

Deno.test({
  name: "MqttPublisher() publishes maps every Nth frame, of anomalous frames only, or never",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["+/cam-1/+"] });
    const cadences = {
      a: { everyN: 3 },
      b: { onlyAnomalous: true },
      c: { onlyAnomalous: true, everyN: 2 },
      d: { everyN: 0 },
    };
    await using stack = new AsyncDisposableStack();
    const pubs = Object.entries(cadences).map(([prefix, map]) =>
      stack.use(publisher(broker.url, { prefix, map }))
    );
    const levels = [0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.1, 0.9]; // anomalous: 2, 5, 7
    for (const s of frames(levels)) for (const p of pubs) p.publishFrame(s);
    // A map may go out after its frame's score (maps are encoded separately), so wait for
    // the expected number of maps, then check which frames they belong to.
    const mapSeqs = async (prefix: string, expected: number) => {
      await sub.waitFor((m) =>
        m.topic === `${prefix}/cam-1/score` && json<ScoreMessage>(m).seq === 7
      );
      if (expected > 0) {
        await sub.waitFor((m) => m.topic === `${prefix}/cam-1/map`, { count: expected });
      }
      return sub.on(`${prefix}/cam-1/map`).map((m) => decodeMapPng(m.payload).header.seq);
    };
    assertEquals(await mapSeqs("a", 3), [0, 3, 6]);
    assertEquals(await mapSeqs("b", 3), [2, 5, 7]);
    assertEquals(await mapSeqs("c", 2), [2, 7]);
    // "d" never publishes maps: by now every other publisher's last map has arrived.
    assertEquals(await mapSeqs("d", 0), []);
  },
});

Deno.test({
  name:
    "MqttPublisher() leaves its last will offline when its connection dies, then comes back online",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using proxy = new TcpProxy(broker.port);
    await using sub = await TestSubscriber.connect(broker.url, {
      topics: ["efficientad/available"],
    });
    const { lines, logger } = capture();
    await using pub = publisher(`mqtt://127.0.0.1:${proxy.port}`, { logger });
    const isAvailable = (m: ReceivedMessage) => m.topic === "efficientad/available";
    await sub.waitFor(isAvailable);
    proxy.cut(); // no DISCONNECT reaches the broker: it publishes the will
    const seen = await sub.waitFor(isAvailable, { count: 3 });
    assertEquals(seen.map((m) => m.text), ["online", "offline", "online"]);
    assertEquals(pub.counters.reconnects, 1);
    assertOk(lines.some((l) => l.includes("lost the MQTT broker connection")));
    assertOk(lines.some((l) => l.includes("reconnected to MQTT broker")));
  },
});

Deno.test({
  name: "MqttPublisher() keeps QoS 1 events through a mosquitto restart and delivers them after",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start({ persistence: true });
    const archive = persistentSession("event-archive", ["efficientad/+/event"]);
    // A persistent session: the broker keeps its QoS 1 messages while it is away.
    await (await TestSubscriber.connect(broker.url, archive)).close();
    const pub = publisher(broker.url, { events: { minDurationMs: 0, updateIntervalMs: 0 } });
    using limit = deadline(15_000);
    await pub.waitConnected(limit);

    // One anomaly published just before the broker stops (in flight or delivered) ...
    for (const s of frames([0.9, 0.1], "cam-1", 0)) pub.publishFrame(s);
    await broker.stop();
    // ... two more while it is down: they wait in the queue.
    for (const s of frames([0.9, 0.9, 0.1, 0.8, 0.1, 0.1], "cam-1", 2)) pub.publishFrame(s);
    for (const s of frames([0.2, 0.95, 0.2], "cam-2", 0)) pub.publishFrame(s);
    assertEquals(pub.connected, false);
    assertOk(pub.counters.queued > 0);

    await broker.resume();
    await pub.flush(limit);
    assertEquals(pub.counters.dropped, 0);
    await pub.close();

    await using sub = await TestSubscriber.connect(broker.url, archive);
    const events = (await sub.waitFor(() => true, { count: 8 })).map((m) => json<EventMessage>(m));
    const keys = [...new Set(events.map((e) => `${e.camera} ${e.type} ${e.start_seq}`))];
    assertEquals(keys.sort(), [
      "cam-1 end 0",
      "cam-1 end 2",
      "cam-1 end 5",
      "cam-1 start 0",
      "cam-1 start 2",
      "cam-1 start 5",
      "cam-2 end 1",
      "cam-2 start 1",
    ]);
  },
});

Deno.test("MqttPublisher() never blocks without a broker: it queues, drops the oldest and counts", async () => {
  const { lines, logger } = capture();
  const pub = publisher(`mqtt://edge:hunter22@127.0.0.1:${freePort()}`, {
    queueLimit: 10,
    logger,
  });
  const started = performance.now();
  for (const s of frames(Array.from({ length: 50 }, () => 0.1))) pub.publishFrame(s);
  const elapsed = performance.now() - started;
  assertOk(elapsed < 1000, `publishing 50 frames took ${elapsed} ms`);
  // score + map per frame: 100 messages into a queue of 10
  assertEquals(pub.counters, {
    connected: false,
    queued: 10,
    published: 0,
    dropped: 90,
    reconnects: 0,
  });
  await new Promise((r) => setTimeout(r, 150)); // a few connection attempts
  await pub.close();
  assertEquals(pub.counters.dropped, 101); // and the 10 left plus `offline` at close
  assertOk(lines.some((l) => l.includes("Cannot connect to MQTT broker")));
  assertOk(lines.some((l) => l.includes("MQTT queue full")));
  assertOk(lines.every((l) => !l.includes("hunter22")), lines.join("\n"));
});

Deno.test({
  name: "MqttPublisher() connects over TLS with a client certificate, user name and password",
  ignore: !HAS_MOSQUITTO || !HAS_OPENSSL || !HAS_MOSQUITTO_PASSWD,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-tls-" });
    try {
      await makeTestCertificates(dir);
      const passwd = join(dir, "passwd");
      await runCommand(MOSQUITTO_PASSWD_BIN!, ["-c", "-b", passwd, "edge", "s3cret-Pa55"], {
        cwd: dir,
      });
      await using broker = await Mosquitto.start({
        passwordFile: passwd,
        tls: {
          cafile: join(dir, "ca.crt"),
          certfile: join(dir, "server.crt"),
          keyfile: join(dir, "server.key"),
          requireCertificate: true,
        },
      });
      assertOk(broker.url.startsWith("mqtts://"));
      const tls = {
        ca: join(dir, "ca.crt"),
        cert: join(dir, "client.crt"),
        key: join(dir, "client.key"),
        rejectUnauthorized: DEFAULT_REJECT_UNAUTHORIZED,
      };
      const files = { ca: Deno.readTextFileSync(tls.ca), cert: "", key: "" };
      files.cert = Deno.readTextFileSync(tls.cert);
      files.key = Deno.readTextFileSync(tls.key);
      await using sub = await TestSubscriber.connect(broker.url, {
        topics: ["efficientad/#"],
        client: { ...files, username: "edge", password: "s3cret-Pa55" },
      });
      const good = capture();
      const bad = capture();
      await using pub = publisher(broker.url, {
        tls,
        username: "edge",
        password: "s3cret-Pa55",
        logger: good.logger,
      });
      await using wrong = publisher(broker.url, {
        tls,
        username: "edge",
        password: "wrong-Pa55word",
        logger: bad.logger,
      });
      using limit = deadline(5000);
      await pub.waitConnected(limit);
      pub.publishFrame(syntheticScoredFrame({ camera: "cam-1", seq: 3 }));
      const [score] = await sub.waitFor((m) => m.topic === "efficientad/cam-1/score");
      assertEquals(json<ScoreMessage>(score!).seq, 3);

      await new Promise((r) => setTimeout(r, 300));
      assertEquals(wrong.connected, false);
      assertOk(
        bad.lines.some((l) => /not authori[sz]ed|bad user ?name or password/i.test(l)),
        bad.lines.join("\n"),
      );
      for (const line of [...good.lines, ...bad.lines]) {
        assertOk(!line.includes("s3cret-Pa55") && !line.includes("wrong-Pa55word"), line);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function pipelineStatus(framesIn: number): PipelineStatus {
  const p = { p50: 10, p95: 20, p99: 30, count: 5 };
  return {
    startedAt: T0,
    model: { version: "m@1", source: "models/m", engine: "onnx (cpu)", untrained: false },
    cameras: [cameraStatus("online", framesIn)],
    inference: { batches: 3, frames: 5, meanBatchSize: 5 / 3, batchMs: p, captureToPublishMs: p },
    mqtt: { url: "x", embedded: false, connected: false, queued: 0, published: 0, dropped: 0 },
  };
}

Deno.test({
  name: "MqttPublisher() publishes stats and statuses periodically; a lost stream ends its event",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["efficientad/#"] });
    let framesIn = 0;
    await using pub = publisher(broker.url, {
      statsIntervalMs: 40,
      statusIntervalMs: 40,
      stats: () => pipelineStatus(framesIn += 10),
      events: { minDurationMs: 0 },
    });
    const stats = await sub.waitFor((m) => m.topic === "efficientad/stats", { count: 2 });
    const [first, second] = stats.map((m) => json<StatsMessage>(m));
    assertEquals(first!.cameras[0]!.fps_in, null);
    assertOk(second!.cameras[0]!.fps_in! > 0);
    assertEquals(second!.model, {
      version: "m@1",
      engine: "onnx (cpu)",
      precision: "fp32",
      untrained: false,
    });
    assertEquals(second!.inference.batch_ms, { p50: 10, p95: 20, p99: 30, count: 5 });
    assertEquals(typeof second!.mqtt.connected, "boolean");
    const statuses = await sub.waitFor((m) => m.topic === "efficientad/cam-1/status", {
      count: 2,
    });
    assertOk(statuses.every((m) => json<StatusMessage>(m).state === "online"));

    for (const s of frames([0.9, 0.9])) pub.publishFrame(s);
    pub.publishStatus({ ...cameraStatus("reconnecting"), lastError: "ffmpeg exited" });
    const events = await sub.waitFor((m) => m.topic === "efficientad/cam-1/event", { count: 2 });
    assertEquals(events.map((m) => json<EventMessage>(m).type), ["start", "end"]);
    assertEquals(json<EventMessage>(events[1]!).reason, "stream_lost");
    await sub.waitFor((m) =>
      m.topic === "efficientad/cam-1/status" && json<StatusMessage>(m).state === "reconnecting"
    );
  },
});

Deno.test("MqttPublisher() rejects bad options plainly", () => {
  assertThrows(
    () => new MqttPublisher(publisherOptions("http://localhost")),
    RangeError,
    "Cannot use MQTT broker URL http://localhost: expected mqtt:// or mqtts://",
  );
  assertThrows(
    () =>
      new MqttPublisher(
        publisherOptions("mqtt://localhost", { tls: { ca: "/x", rejectUnauthorized: true } }),
      ),
    RangeError,
    "Cannot use TLS files with MQTT broker URL",
  );
  assertThrows(
    () =>
      new MqttPublisher(
        publisherOptions("mqtts://localhost", {
          tls: { ca: "/nonexistent/ca.crt", rejectUnauthorized: true },
        }),
      ),
    Error,
    "Cannot read MQTT TLS CA file /nonexistent/ca.crt",
  );
  assertThrows(
    () => new MqttPublisher(publisherOptions("mqtt://localhost", { prefix: "a/#" })),
    RangeError,
    "Cannot use MQTT topic prefix",
  );
  assertThrows(
    () => new MqttPublisher(publisherOptions("mqtt://localhost", { map: { width: 10 } })),
    RangeError,
    "give both width and height",
  );
});

Deno.test("MqttPublisher() logs and counts a frame it cannot encode, and goes on", async () => {
  const { lines, logger } = capture();
  const pub = publisher(`mqtt://127.0.0.1:${freePort()}`, { logger });
  pub.publishFrame(syntheticScoredFrame({ map: tensor([2, 4, 4]) }));
  pub.publishFrame(syntheticScoredFrame({ camera: "bad/name" }));
  pub.publishFrame(syntheticScoredFrame({ seq: 2 }));
  // the first frame's score went out before its map failed; the second was refused whole
  assertEquals([pub.counters.queued, pub.counters.dropped], [3, 2]);
  await pub.close();
  assertOk(lines.some((l) => l.includes("Cannot encode anomaly map of shape [2, 4, 4]")));
  assertOk(lines.some((l) => l.includes("Cannot publish for camera")));
});

Deno.test("MqttPublisher.writable takes frames from a stream without waiting for a broker", async () => {
  const controller = new AbortController();
  const pub = publisher(`mqtt://127.0.0.1:${freePort()}`, {
    signal: controller.signal,
    map: { everyN: 0 },
  });
  await ReadableStream.from(frames([0.1, 0.2, 0.3])).pipeTo(pub.writable);
  assertEquals([pub.counters.queued, pub.counters.connected], [3, false]);
  controller.abort(); // closes the publisher
  await pub.close();
  assertEquals(pub.counters.dropped, 4);
  pub.publishFrame(syntheticScoredFrame()); // ignored once closed
  assertEquals(pub.counters.queued, 0);
});

Deno.test({
  name: "MqttPublisher() loses no QoS 1 event across repeated broker restarts mid-stream",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start({ persistence: true });
    const archive = persistentSession("archive-2", ["efficientad/+/event"]);
    await (await TestSubscriber.connect(broker.url, archive)).close();
    const pub = publisher(broker.url, {
      queueLimit: 5000,
      events: { minDurationMs: 0, updateIntervalMs: 0 },
      map: { width: 16, height: 16 },
    });
    using limit = deadline(20_000);
    await pub.waitConnected(limit);
    let seq = 0;
    const expected = new Set<string>();
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 100; i++, seq++) {
        const level = seq % 4 === 0 ? 0.9 : 0.1; // one-frame anomalies: a start and an end each
        if (level > 0.5) expected.add(`start ${seq}`).add(`end ${seq}`);
        pub.publishFrame(
          syntheticScoredFrame({ seq, capturedAt: T0 + seq * 10, normalizedScore: level }),
        );
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      await (round % 2 === 0 ? broker.stop() : broker.resume());
    }
    await broker.resume();
    await pub.flush(limit);
    assertEquals(pub.counters.dropped, 0);
    assertOk(pub.counters.reconnects >= 1);
    await pub.close();

    await using sub = await TestSubscriber.connect(broker.url, archive);
    const key = (m: ReceivedMessage) => {
      const e = json<EventMessage>(m);
      return `${e.type} ${e.start_seq}`;
    };
    // At least once: duplicates may come, nothing may be missing.
    await sub.waitFor(() => true, { count: expected.size });
    const deadlineMs = Date.now() + 5000;
    while (new Set(sub.messages.map(key)).size < expected.size && Date.now() < deadlineMs) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(new Set(sub.messages.map(key)), expected);
  },
});
