import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { ConfigError } from "./config_error.ts";
import { loadPipeline, parsePipeline } from "./load.ts";

/** A file with three mistakes at known lines. */
const BROKEN = `# line 1
version: 1

cameras:
  - name: line3-top
    url: rtsp://10.20.0.11/s1
    fps: 5
    rtsp_transport: tcp
    fsp: 5
  - name: line3-side
    url: rtsp://10.20.0.12/s1
    fps: -2
    roi: { x: 0, y: 0, width: 640, height: 480 }

model:
  engine: onnx

batching:
  max_batch: 4

http:
  port: 8080

logging:
  level: info

mqtt:
  url: mqtt://broker:1883
  topic_prefix: factory/line3
  qos: 3
`;

function issuesOf(fn: () => unknown): string[] {
  const e = assertThrows(fn, ConfigError) as ConfigError;
  return e.message.split("\n").slice(e.issues.length === 1 ? 0 : 1).map((l) => l.trim());
}

Deno.test("parsePipeline() reports every problem as path (line N): message", () => {
  assertEquals(issuesOf(() => parsePipeline(BROKEN, "line3.yaml", { env: {} })), [
    'cameras[0].fsp (line 9): unknown key (did you mean "fps"?)',
    "cameras[1].fps (line 12): expected a positive number",
    "mqtt.qos (line 30): expected 0, 1 or 2",
  ]);
  const e = assertThrows(() => parsePipeline(BROKEN, "line3.yaml", { env: {} }), ConfigError);
  assertOk(e.message.startsWith("Cannot load pipeline line3.yaml: 3 problems\n"));
  assertEquals((e as ConfigError).issues[2], {
    path: "mqtt.qos",
    line: 30,
    message: "expected 0, 1 or 2",
  });
});

Deno.test("parsePipeline() names the line of a precision tfjs cannot serve", () => {
  const text = "cameras:\n  - name: a\n    url: lavfi:testsrc2\nmodel:\n  engine: tfjs\n" +
    "  precision: int8\n";
  assertEquals(issuesOf(() => parsePipeline(text, "p.yaml", { env: {} })), [
    "Cannot load pipeline p.yaml: model.precision (line 6): int8 needs engine onnx: the tfjs " +
    "engine runs fp32 only",
  ]);
  const ok = "cameras:\n  - name: a\n    url: lavfi:testsrc2\nmodel:\n  precision: int8\n";
  assertEquals(parsePipeline(ok, "p.yaml", { env: {} }).model.precision, "int8");
});

Deno.test("parsePipeline() reports unknown keys with their line", () => {
  const text = "cameras:\n  - name: a\n    url: lavfi:testsrc2\n    roi:\n      x: 0\n" +
    "      y: 0\n      widht: 10\n      height: 10\nhttpp: {}\n";
  assertEquals(issuesOf(() => parsePipeline(text, "t.yaml", { env: {} })), [
    "cameras[0].roi.width (line 5): is required",
    'cameras[0].roi.widht (line 7): unknown key (did you mean "width"?)',
    'httpp (line 9): unknown key (did you mean "http"?)',
  ]);
});

Deno.test("parsePipeline() names the line of a YAML syntax error", () => {
  const text = "cameras:\n  - name: a\n    url: lavfi:x\nmqtt:\n  qos: 1\n  qos: 2\n";
  assertEquals(issuesOf(() => parsePipeline(text, "t.yaml", { env: {} })), [
    "Cannot load pipeline t.yaml: line 6: YAML syntax: map keys must be unique",
  ]);
  const bad = "cameras:\n  - name: a\n    url: [lavfi:x\nhttp:\n  port: 1\n";
  const lines = issuesOf(() => parsePipeline(bad, "t.yaml", { env: {} }));
  assertOk(lines.every((l) => /line \d+: YAML syntax: /.test(l)), lines.join("\n"));
});

Deno.test("parsePipeline() names the key and the variable of a missing environment variable", () => {
  const text = "cameras:\n  - name: a\n    url: rtsp://${CAM_USER}:${CAM_PASS}@cam/1\nmqtt:\n" +
    "  url: mqtt://broker\n  username: edge\n  password: ${MQTT_PASS}\n";
  assertEquals(issuesOf(() => parsePipeline(text, "t.yaml", { env: { CAM_USER: "viewer" } })), [
    "cameras[0].url (line 3): environment variable CAM_PASS is not set",
    "mqtt.password (line 7): environment variable MQTT_PASS is not set",
  ]);
});

Deno.test("parsePipeline() does not repeat a problem for an unset variable", () => {
  const text = "cameras:\n  - name: a\n    url: lavfi:x\nhttp:\n  port: ${HTTP_PORT}\n" +
    "  prot: ${P}\n";
  assertEquals(issuesOf(() => parsePipeline(text, "t.yaml", { env: {} })), [
    "http.port (line 5): environment variable HTTP_PORT is not set",
    'http.prot (line 6): unknown key (did you mean "port"?)',
  ]);
  const ok = parsePipeline(text.replace("  prot: ${P}\n", ""), "t.yaml", {
    env: { HTTP_PORT: "9090" },
  });
  assertEquals(ok.http.port, 9090);
});

Deno.test("parsePipeline() never quotes a secret in its messages", () => {
  const text = "cameras:\n  - name: a\n    url: http://admin:${PASS}@cam/1\nmqtt:\n" +
    "  password: ${PASS}\n  qos: ${PASS}\n";
  const e = assertThrows(
    () => parsePipeline(text, "t.yaml", { env: { PASS: "hunter22" } }),
    ConfigError,
  );
  assertOk(!e.message.includes("hunter22"), e.message);
  assertEquals((e as ConfigError).issues.map((i) => i.path), [
    "cameras[0].url",
    "mqtt.password",
    "mqtt.qos",
  ]);
});

Deno.test("parsePipeline() reports a file that is empty or not a mapping", () => {
  assertEquals(issuesOf(() => parsePipeline("", "e.yaml", { env: {} })), [
    "Cannot load pipeline e.yaml: cameras (line 1): is required",
  ]);
  assertEquals(issuesOf(() => parsePipeline("- a\n- b\n", "l.yaml", { env: {} })), [
    "Cannot load pipeline l.yaml: line 1: expected a mapping",
  ]);
});

Deno.test("parsePipeline() reads the process environment by default", () => {
  Deno.env.set("EFFICIENTAD_TEST_CAM", "from-process");
  try {
    const p = parsePipeline(
      "cameras:\n  - name: a\n    url: lavfi:${EFFICIENTAD_TEST_CAM}\n",
      "t.yaml",
    );
    assertEquals(p.cameras[0]!.source, { kind: "lavfi", graph: "from-process" });
    assertOk(p.secrets.includes("from-process"));
  } finally {
    Deno.env.delete("EFFICIENTAD_TEST_CAM");
  }
});

Deno.test("loadPipeline() resolves relative paths against the file's directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "p.yaml");
    await Deno.writeTextFile(
      file,
      "cameras:\n  - name: a\n    url: clips/a.mp4\nmodel:\n  path: ../models/m\n",
    );
    const p = await loadPipeline(file, { env: {}, hostname: "h" });
    assertEquals(p.file, file);
    assertEquals(p.cameras[0]!.source, { kind: "file", path: join(dir, "clips", "a.mp4") });
    assertEquals(p.model.path, join(dir, "..", "models", "m"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPipeline() reports a missing file", async () => {
  const e = await assertRejects(
    () => loadPipeline("/nonexistent/p.yaml", { env: {} }),
    ConfigError,
  );
  assertEquals(e.message, "Cannot load pipeline /nonexistent/p.yaml: no such file");
});
