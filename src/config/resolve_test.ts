import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { ConfigError } from "./config_error.ts";
import { resolvePipeline } from "./resolve.ts";

Deno.test("resolvePipeline() fills every default", () => {
  const p = resolvePipeline({ cameras: [{ name: "cam", url: "rtsp://10.0.0.5/s1" }] }, {
    file: "min.yaml",
    hostname: "edge-01",
    baseDir: "/srv",
  });
  assertEquals<unknown>(p, {
    version: 1,
    file: "min.yaml",
    cameras: [{
      name: "cam",
      url: "rtsp://10.0.0.5/s1",
      source: { kind: "rtsp", url: "rtsp://10.0.0.5/s1", tls: false },
      fps: null,
      roi: null,
      rtspTransport: "tcp",
      loop: false,
      stallTimeoutMs: 5000,
      backoff: { initialMs: 500, maxMs: 30000 },
      resize: "auto",
      hwaccel: null,
      enabled: true,
    }],
    model: {
      path: null,
      engine: "onnx",
      executionProviders: ["cpu"],
      threads: null,
      precision: "fp32",
      threshold: { policy: "model" },
      hints: {},
    },
    batching: { maxBatch: 4, maxWaitMs: 20, queuePerCamera: 2 },
    mqtt: {
      url: "mqtt://127.0.0.1:1883",
      embedded: { host: "127.0.0.1", port: 1883 },
      clientId: "efficientad-edge-01",
      topicPrefix: "efficientad",
      qos: 1,
      retainStatus: true,
      tls: null,
      username: null,
      password: null,
      queueLimit: 1000,
      map: { everyN: 1, onlyAnomalous: false, width: 64, height: 64 },
      events: { onThreshold: 0.5, offThreshold: 0.4, minDurationMs: 500, updateIntervalMs: 1000 },
      statsIntervalMs: 10000,
    },
    http: { enabled: true, host: "127.0.0.1", port: 8080 },
    logging: { level: "info" },
    retrain: {
      enabled: false,
      store: {
        dir: "/srv/data/retrain",
        maxFrames: 1000,
        maxOperatorFrames: 1000,
        maxBytes: 536870912,
        quantile: 0.5,
        minIntervalMs: 60000,
        eventGuardMs: 30000,
        duplicateThreshold: 3,
      },
      triggers: {
        intervalMs: null,
        dailyAt: [],
        timeZone: "utc",
        minNewFrames: null,
        drift: null,
        cooldownMs: 600000,
      },
      training: {
        steps: 1000,
        engine: "onnx",
        executionProviders: null,
        teacher: null,
        penaltyImages: null,
        imageSize: null,
      },
      promotion: {
        keep: 3,
        margins: {
          flaggedFraction: 0.05,
          medianNormalized: 0.1,
          detectedFraction: 0.1,
          auroc: 0.02,
        },
      },
      bootstrap: { frames: 50 },
      cameras: [{ camera: "cam", enabled: false, storeKey: "cam" }],
    },
  });
});

Deno.test("resolvePipeline() keeps what is given and makes paths absolute", () => {
  const p = resolvePipeline({
    cameras: [{
      name: "clip",
      url: "clips/a.mp4",
      loop: false,
      fps: 5,
      roi: { x: 1, y: 2, width: 30, height: 40 },
      hwaccel: { type: "cuda", extra_args: ["-extra_hw_frames", "3"] },
      enabled: false,
    }],
    model: {
      path: "models/m",
      execution_providers: ["tensorrt", "cuda"],
      threads: 2,
      precision: "int8",
      threshold: { policy: "fixed", value: 1.5 },
      size: "m",
      pad_maps: false,
      image_size: 320,
    },
    mqtt: {
      url: "mqtts://broker:8883",
      tls: { ca: "tls/ca.pem", cert: "/etc/c.pem", key: "/etc/k.pem" },
      username: "u",
      password: "secret-pw",
    },
  }, { baseDir: "/srv/pipelines", hostname: "h" });
  const c = p.cameras[0]!;
  assertEquals(c.source, { kind: "file", path: "/srv/pipelines/clips/a.mp4" });
  assertEquals([c.loop, c.fps, c.enabled], [false, 5, false]);
  assertEquals(c.roi, { x: 1, y: 2, width: 30, height: 40 });
  assertEquals(c.hwaccel, { type: "cuda", decoder: null, extraArgs: ["-extra_hw_frames", "3"] });
  assertEquals(p.model, {
    path: "/srv/pipelines/models/m",
    engine: "onnx",
    executionProviders: ["tensorrt", "cuda"],
    threads: 2,
    precision: "int8",
    threshold: { policy: "fixed", value: 1.5 },
    hints: { size: "m", padMaps: false, imageSize: [320, 320] },
  });
  assertEquals(p.mqtt.embedded, null);
  assertEquals(p.mqtt.url, "mqtts://broker:8883");
  assertEquals(p.mqtt.tls, {
    ca: "/srv/pipelines/tls/ca.pem",
    cert: "/etc/c.pem",
    key: "/etc/k.pem",
    rejectUnauthorized: true,
  });
});

Deno.test("resolvePipeline() derives the client id and the embedded broker's URL", () => {
  const p = resolvePipeline({
    cameras: [{ name: "c", url: "lavfi:testsrc2" }],
    mqtt: { embedded: { host: "::1", port: 0 } },
  }, { hostname: "line 3/edge" });
  assertEquals(p.mqtt.clientId, "efficientad-line-3-edge");
  assertEquals(p.mqtt.url, "mqtt://[::1]:0");
  assertEquals(p.cameras[0]!.loop, false);
  const files = resolvePipeline({ cameras: [{ name: "c", url: "/data/a.mp4" }] });
  assertEquals(files.cameras[0]!.loop, true);
});

Deno.test("resolvePipeline() keeps secrets out of sight but at hand", () => {
  const p = resolvePipeline({
    cameras: [{ name: "c", url: "rtsp://admin:cam%40pw@cam/1" }],
    mqtt: { url: "mqtt://broker", username: "u", password: "mqtt-pw" },
  }, { secrets: ["from-env"] });
  assertEquals([...p.secrets].sort(), ["cam%40pw", "cam@pw", "from-env", "mqtt-pw"]);
  assertOk(!Object.keys(p).includes("secrets"));
  assertOk(!JSON.stringify(p).includes("from-env"));
});

Deno.test("resolvePipeline() validates objects built in code", () => {
  const e = assertThrows(
    () =>
      resolvePipeline(
        { cameras: [{ name: "Bad Name", url: "lavfi:x", fps: -1 }] },
        { file: "code" },
      ),
    ConfigError,
  ) as ConfigError;
  assertEquals(e.issues.map((i) => [i.path, i.line]), [
    ["cameras[0].name", undefined],
    ["cameras[0].fps", undefined],
  ]);
  assertOk(e.message.startsWith("Cannot load pipeline code: 2 problems"));
});
