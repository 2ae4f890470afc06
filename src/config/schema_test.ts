import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { ROOT } from "../../tests/parity.ts";
import { knownKeys, pipelineSchema } from "./schema.ts";

function messages(data: unknown): string[] {
  const r = pipelineSchema.safeParse(data);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

const CAMERA = { name: "cam", url: "lavfi:testsrc2" };

Deno.test("pipelineSchema accepts the smallest file: one camera", () => {
  assertEquals(messages({ cameras: [CAMERA] }), []);
});

Deno.test("pipelineSchema gives one plain message per key", () => {
  assertEquals(
    messages({
      version: 2,
      cameras: [{ ...CAMERA, fps: 0, rtsp_transport: "quic", resize: "nearest" }],
      mqtt: { qos: 3, topic_prefix: "a/#" },
      http: { port: 70000 },
      logging: { level: "trace" },
    }),
    [
      "version: expected 1 (the only pipeline file version)",
      "cameras.0.fps: expected a positive number",
      "cameras.0.rtsp_transport: expected tcp or udp",
      "cameras.0.resize: expected auto, exact or ffmpeg",
      "mqtt.topic_prefix: expected a topic prefix without wildcards (+, #), spaces, a leading $ " +
      "or empty levels, e.g. factory/line3",
      "mqtt.qos: expected 0, 1 or 2",
      "http.port: expected a port number from 0 to 65535",
      "logging.level: expected debug, info, warn or error",
    ],
  );
});

Deno.test("pipelineSchema checks keys that go together", () => {
  assertEquals(
    messages({
      cameras: [{ ...CAMERA, loop: true, backoff: { initial_ms: 2000, max_ms: 1000 } }],
      model: {
        engine: "tfjs",
        threads: 2,
        precision: "int8",
        threshold: { policy: "model", value: 1 },
      },
      mqtt: {
        url: "mqtt://broker",
        embedded: { port: 1 },
        tls: { cert: "c.pem" },
        password: "x",
        events: { off_threshold: 0.6 },
      },
    }),
    [
      "cameras.0.backoff.max_ms: expected max_ms (1000) to be at least initial_ms (2000)",
      "cameras.0.loop: applies to file sources only (this one is lavfi)",
      "model.threshold.value: applies to policy fixed only (policy model takes the model's threshold)",
      "model.threads: applies to engine onnx only",
      "model.precision: int8 needs engine onnx: the tfjs engine runs fp32 only",
      "mqtt.tls.cert: requires key (the client key file)",
      "mqtt.events.off_threshold: expected off_threshold (0.6) to be at most on_threshold (0.5)",
      "mqtt.embedded: applies only without url (the embedded broker starts when no url is given)",
      "mqtt.tls: applies to a TLS broker URL only (mqtts://, tls:// or wss://)",
      "mqtt.password: requires username",
    ],
  );
  assertEquals(messages({ cameras: [CAMERA], model: { threshold: { policy: "fixed" } } }), [
    "model.threshold.policy: policy fixed requires value (a raw score)",
  ]);
});

Deno.test("pipelineSchema checks cross-key rules even when a sibling key is invalid", () => {
  assertEquals(messages({ cameras: [{ ...CAMERA, fps: -1, rtsp_transport: "udp" }] }), [
    "cameras.0.fps: expected a positive number",
    "cameras.0.rtsp_transport: applies to rtsp:// sources only (this one is lavfi)",
  ]);
});

Deno.test("pipelineSchema refuses an empty camera list and bad model settings", () => {
  assertEquals(messages({ cameras: [] }), ["cameras: expected at least one camera"]);
  assertEquals(
    messages({
      cameras: [CAMERA],
      model: { execution_providers: ["cuda", "cuda", "rocm"], image_size: [255, 256] },
    }),
    [
      "model.execution_providers.2: expected tensorrt, cuda, webgpu or cpu",
      "model.image_size.0: expected an image size of at least 256",
    ],
  );
  assertEquals(messages({ cameras: [CAMERA], model: { execution_providers: ["cpu", "cpu"] } }), [
    "model.execution_providers: expected no provider twice",
  ]);
  assertEquals(messages({ cameras: [CAMERA], model: { precision: "int4" } }), [
    "model.precision: expected fp32, fp16 or int8",
  ]);
  assertEquals(messages({ cameras: [CAMERA], model: { engine: "tfjs", precision: "fp32" } }), []);
});

Deno.test("knownKeys() lists the keys a mapping accepts", () => {
  assertEquals(knownKeys(["cameras", 0, "roi"]), ["x", "y", "width", "height"]);
  assertEquals(knownKeys(["batching"]), ["max_batch", "max_wait_ms", "queue_per_camera"]);
  assertEquals(knownKeys(["cameras", 0, "fps"]), []);
  assertEquals(knownKeys(["nope"]), []);
  assertOk(knownKeys([]).includes("cameras"));
});

function allKeyPaths(path: (string | number)[] = []): string[] {
  const out: string[] = [];
  for (const key of knownKeys(path)) {
    const child = key === "cameras" ? [...path, key, 0] : [...path, key];
    const dotted = [...path, key].filter((s) => typeof s === "string").join(".");
    const nested = allKeyPaths(child);
    if (nested.length === 0) out.push(dotted);
    else out.push(...nested);
  }
  return out;
}

Deno.test("docs/pipeline.md documents every key of the schema", () => {
  const doc = Deno.readTextFileSync(join(ROOT, "docs", "pipeline.md"));
  const missing = allKeyPaths().filter((path) => {
    const leaf = path.split(".").slice(-2).join(".");
    const last = path.split(".").at(-1)!;
    return !doc.includes("`" + leaf + "`") && !doc.includes("`" + last + "`");
  });
  assertEquals(missing, []);
  assertOk(allKeyPaths().length > 50);
});
