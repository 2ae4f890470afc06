/**
 * The service scoring a camera through the WebGPU engine end to end: an ffmpeg lavfi
 * camera, mosquitto, a project model directory served with
 * `model.execution_providers: [webgpu, cpu]` on Deno's WebGPU adapter (Mesa's llvmpipe on
 * machines without a GPU: seconds per frame, so the model is EfficientAD-S with 64 teacher
 * channels), and an MQTT subscriber reading the scores.
 */
import { join } from "node:path";
import { createLogger } from "../../src/core/log.ts";
import { parsePipeline } from "../../src/config/mod.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { resolveConfig } from "../../src/model/config.ts";
import { syntheticModel } from "../../src/model/synthetic.ts";
import { writeProjectModel } from "../../src/model/project_format.ts";
import { TestSubscriber } from "../support/mqtt_subscriber.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";
import { HAS_WEBGPU } from "../support/webgpu.ts";
import { assertEquals, assertOk } from "../assert.ts";

Deno.test({
  name: "Pipeline() scores a camera through the WebGPU engine and names the adapter in /status",
  ignore: !HAS_MOSQUITTO || !HAS_FFMPEG || !HAS_WEBGPU,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "webgpu_pipeline_" });
    try {
      const modelDir = join(dir, "model");
      await writeProjectModel(
        modelDir,
        syntheticModel(resolveConfig({ size: "s", teacherOutChannels: 64 })),
      );
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `
cameras:
  - name: gpu
    url: "lavfi:testsrc2=size=256x256:rate=2"
    fps: 1
model:
  path: ${modelDir}
  execution_providers: [webgpu, cpu]
  threshold: { policy: fixed, value: 0 }
batching: { max_batch: 1, max_wait_ms: 10, queue_per_camera: 1 }
mqtt:
  url: ${broker.url}
  client_id: it-webgpu
  topic_prefix: wg
http: { port: 0 }
`,
        join(dir, "webgpu.yaml"),
      );
      const lines: string[] = [];
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["wg/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: (l) => lines.push(l) }),
      });
      const status = pipeline.status();
      assertOk(
        status.model.engine.includes("webgpu") && status.model.engine.includes("onnxruntime-web"),
        `engine: ${status.model.engine}\n${lines.join("\n")}`,
      );
      assertOk(status.model.adapter !== undefined, "the adapter is named in /status");
      // Two frames scored on the GPU (the first one also compiles the shaders).
      const scores = await sub.waitFor((m) => m.topic === "wg/gpu/score", {
        count: 2,
        timeoutMs: 240_000,
      });
      for (const m of scores) {
        const score = JSON.parse(m.text) as { score: number; anomalous: boolean };
        assertOk(Number.isFinite(score.score), m.text);
        assertEquals(score.anomalous, true); // fixed threshold 0
      }
      assertOk(pipeline.status().inference.frames >= 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
