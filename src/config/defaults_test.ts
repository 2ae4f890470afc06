import { assertEquals } from "../../tests/assert.ts";
import { DEFAULTS } from "./defaults.ts";
import { resolvePipeline } from "./resolve.ts";

Deno.test("DEFAULTS are what a pipeline with one camera resolves to", () => {
  const p = resolvePipeline({ cameras: [{ name: "c", url: "rtsp://cam/1" }] }, {
    hostname: "h",
  });
  const c = p.cameras[0]!;
  assertEquals(
    [c.rtspTransport, c.stallTimeoutMs, c.backoff.initialMs, c.backoff.maxMs, c.resize],
    [
      DEFAULTS.camera.rtsp_transport,
      DEFAULTS.camera.stall_timeout_ms,
      DEFAULTS.camera.backoff.initial_ms,
      DEFAULTS.camera.backoff.max_ms,
      DEFAULTS.camera.resize,
    ],
  );
  assertEquals(p.batching, {
    maxBatch: DEFAULTS.batching.max_batch,
    maxWaitMs: DEFAULTS.batching.max_wait_ms,
    queuePerCamera: DEFAULTS.batching.queue_per_camera,
  });
  assertEquals(p.mqtt.embedded, DEFAULTS.mqtt.embedded);
  assertEquals(p.http, DEFAULTS.http);
  assertEquals(p.logging, DEFAULTS.logging);
});

Deno.test("DEFAULTS fill in every other non-retrain key of the file", () => {
  const p = resolvePipeline({ cameras: [{ name: "c", url: "clip.mp4" }] }, {
    hostname: "h",
    baseDir: "/base",
  });
  const c = p.cameras[0]!;
  const d = DEFAULTS;
  assertEquals([c.loop, c.enabled, c.fps, c.roi, c.hwaccel], [
    d.camera.loop,
    d.camera.enabled,
    null,
    null,
    null,
  ]);
  assertEquals(p.model, {
    path: null,
    engine: d.model.engine,
    executionProviders: [...d.model.execution_providers],
    threads: null,
    precision: d.model.precision,
    threshold: d.model.threshold,
    hints: {},
  });
  const q = d.mqtt;
  assertEquals(p.mqtt, {
    url: `mqtt://${q.embedded.host}:${q.embedded.port}`,
    embedded: q.embedded,
    clientId: `${q.client_id_prefix}h`,
    topicPrefix: q.topic_prefix,
    qos: q.qos,
    retainStatus: q.retain_status,
    tls: null,
    username: null,
    password: null,
    queueLimit: q.queue_limit,
    map: {
      everyN: q.map.every_n,
      onlyAnomalous: q.map.only_anomalous,
      width: q.map.width,
      height: q.map.height,
    },
    events: {
      onThreshold: q.events.on_threshold,
      offThreshold: q.events.off_threshold,
      minDurationMs: q.events.min_duration_ms,
      updateIntervalMs: q.events.update_interval_ms,
    },
    statsIntervalMs: q.stats_interval_ms,
  });
  const tls = resolvePipeline({
    cameras: [{ name: "c", url: "clip.mp4" }],
    mqtt: { url: "mqtts://broker:8883", tls: {} },
  }).mqtt.tls;
  assertEquals(tls?.rejectUnauthorized, q.reject_unauthorized);
});

Deno.test("DEFAULTS match the issue's numbers", () => {
  assertEquals(DEFAULTS.batching, { max_batch: 4, max_wait_ms: 20, queue_per_camera: 2 });
  assertEquals(DEFAULTS.mqtt.embedded, { host: "127.0.0.1", port: 1883 });
  assertEquals(DEFAULTS.http, { enabled: true, host: "127.0.0.1", port: 8080 });
});
