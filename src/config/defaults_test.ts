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

Deno.test("DEFAULTS match the issue's numbers", () => {
  assertEquals(DEFAULTS.batching, { max_batch: 4, max_wait_ms: 20, queue_per_camera: 2 });
  assertEquals(DEFAULTS.mqtt.embedded, { host: "127.0.0.1", port: 1883 });
  assertEquals(DEFAULTS.http, { enabled: true, host: "127.0.0.1", port: 8080 });
});
