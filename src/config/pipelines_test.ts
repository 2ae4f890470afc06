/**
 * The example pipelines in `pipelines/` stay valid, and the demo's synthetic scene still
 * runs in ffmpeg and still shows its defects.
 */
import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { ROOT } from "../../tests/parity.ts";
import { ConfigError } from "./config_error.ts";
import { loadPipeline } from "./load.ts";
import { redactedConfig } from "./redacted.ts";

const DIR = join(ROOT, "pipelines");
const ENV = {
  CAM_USER: "viewer",
  CAM_PASS: "cam-secret",
  MQTT_USER: "line3",
  MQTT_PASS: "mqtt-secret",
};

async function demoGraph(): Promise<string> {
  const demo = await loadPipeline(join(DIR, "demo.yaml"), { env: {} });
  const source = demo.cameras[0]!.source;
  if (source.kind !== "lavfi") throw new Error(`demo source is ${source.kind}, not lavfi`);
  return source.graph;
}

/** The first `count` frames of a lavfi graph as raw RGB (after the `filters` arguments). */
function rgbFrames(graph: string, count: number, filters: string[] = []): Promise<Uint8Array> {
  return ffmpeg([
    ...["-f", "lavfi", "-i", graph, ...filters, "-frames:v", String(count)],
    ...["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
  ]);
}

/** Runs ffmpeg (argv as data, no shell) with a deadline; returns stdout. */
async function ffmpeg(args: string[]): Promise<Uint8Array> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 60_000);
  try {
    const out = await new Deno.Command("ffmpeg", {
      args: ["-hide_banner", "-nostdin", "-loglevel", "error", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, `ffmpeg ${args.join(" ")} failed:\n${stderr}`);
    return out.stdout;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("pipelines/demo.yaml is one lavfi camera that learns its scene, and local services", async () => {
  const p = await loadPipeline(join(DIR, "demo.yaml"), { env: {} });
  assertEquals(p.cameras.length, 1);
  assertEquals(p.cameras[0]!.source.kind, "lavfi");
  assertEquals(p.model.path, null);
  assertEquals(p.mqtt.embedded, { host: "127.0.0.1", port: 1883 });
  assertEquals(p.mqtt.url, "mqtt://127.0.0.1:1883");
  assertEquals(p.http, { enabled: true, host: "127.0.0.1", port: 8080 });
  assertEquals(p.secrets, []);
  assertEquals(p.retrain.enabled, true);
  assertEquals(p.retrain.cameras, [{ camera: "demo", enabled: true, storeKey: "demo" }]);
  assertEquals(p.retrain.store.dir, join(DIR, "..", "data", "retrain"));
});

Deno.test("pipelines/demo.yaml's lavfi graph runs in ffmpeg", async () => {
  const graph = await demoGraph();
  assertOk(graph.includes("s=256x256"), graph);
  const frame = 256 * 256 * 3;
  const out = await rgbFrames(graph, 2);
  assertEquals(out.length, 2 * frame);
});

Deno.test("pipelines/demo.yaml's scene shows its injected defect", async () => {
  const graph = await demoGraph();
  const frame = 256 * 256 * 3;
  // Frame 0 (t = 0 s) is clean; frame 35 (t = 3.5 s) has the dark stain.
  const out = await rgbFrames(graph, 2, ["-vf", "select='eq(n,0)+eq(n,35)'", "-vsync", "0"]);
  assertEquals(out.length, 2 * frame);
  let darker = 0;
  for (let i = 0; i < frame; i += 3) {
    const drop = out[i]! + out[i + 1]! + out[i + 2]! -
      (out[frame + i]! + out[frame + i + 1]! + out[frame + i + 2]!);
    if (drop > 3 * 60) darker++;
  }
  // The stain is 30 x 20 = 600 pixels; the sensor noise darkens none by that much.
  assertOk(darker >= 400 && darker <= 2000, `${darker} pixels darkened`);
});

Deno.test("pipelines/rtsp-two-cameras.yaml takes its credentials from the environment", async () => {
  const p = await loadPipeline(join(DIR, "rtsp-two-cameras.yaml"), { env: ENV });
  assertEquals(p.cameras.map((c) => [c.name, c.source.kind, c.fps]), [
    ["line3-top", "rtsp", 5],
    ["line3-side", "rtsp", 2.5],
  ]);
  assertEquals(p.cameras[0]!.roi, { x: 320, y: 180, width: 1280, height: 720 });
  assertOk(p.cameras[0]!.url.startsWith("rtsp://viewer:cam-secret@"));
  assertEquals(p.mqtt.embedded, null);
  assertEquals(p.mqtt.url, "mqtt://mosquitto.local:1883");
  assertEquals([p.mqtt.username, p.mqtt.password], ["line3", "mqtt-secret"]);
  const shown = JSON.stringify(redactedConfig(p));
  for (const secret of Object.values(ENV)) assertOk(!shown.includes(secret), secret);
  const e = await assertRejects(
    () => loadPipeline(join(DIR, "rtsp-two-cameras.yaml"), { env: {} }),
    ConfigError,
  );
  assertOk(e.message.includes("environment variable CAM_PASS is not set"), e.message);
  assertOk(e.message.includes("mqtt.password (line "), e.message);
});

Deno.test("pipelines/jetson.yaml asks for TensorRT and CUDA, hardware decode and TLS", async () => {
  const p = await loadPipeline(join(DIR, "jetson.yaml"), { env: ENV });
  assertEquals(p.model.executionProviders, ["tensorrt", "cuda", "cpu"]);
  assertEquals(p.cameras.map((c) => c.hwaccel), [
    { type: null, decoder: "h264_nvv4l2dec", extraArgs: [] },
    { type: "cuda", decoder: "h264_cuvid", extraArgs: ["-extra_hw_frames", "3"] },
  ]);
  assertEquals(p.mqtt.tls, {
    ca: "/etc/efficientad/tls/ca.pem",
    cert: "/etc/efficientad/tls/edge.pem",
    key: "/etc/efficientad/tls/edge.key",
    rejectUnauthorized: true,
  });
  assertEquals(p.model.threshold, { policy: "fixed", value: 1.25 });
});

Deno.test("pipelines/jetson-webgpu.yaml asks for WebGPU first, then the CPU", async () => {
  const p = await loadPipeline(join(DIR, "jetson-webgpu.yaml"), { env: ENV });
  assertEquals(p.model.executionProviders, ["webgpu", "cpu"]);
  assertEquals(p.model.engine, "onnx");
  assertEquals(p.cameras[0]!.hwaccel?.decoder, "h264_nvv4l2dec");
});

Deno.test("pipelines/*.yaml all load", async () => {
  const files = [...Deno.readDirSync(DIR)].filter((e) => e.name.endsWith(".yaml"))
    .map((e) => e.name).sort();
  for (const f of ["demo.yaml", "jetson.yaml", "jetson-webgpu.yaml", "rtsp-two-cameras.yaml"]) {
    assertOk(files.includes(f), `${f} is missing`);
  }
  for (const f of files) await loadPipeline(join(DIR, f), { env: ENV });
});
