/**
 * The pipeline the benchmarks run: `cameras` lavfi test cameras at 256x256 and `fps`, the
 * built-in model on ONNX Runtime, batches of up to 4, an embedded broker on a free port,
 * small maps for every frame (so that publishing costs what it costs), no HTTP.
 *
 * @module
 */
import { parsePipeline, type ResolvedPipeline } from "../src/config/mod.ts";

/** The benchmarks' pipeline; see the module doc. */
export function benchPipeline(cameras: number, fps: number, name: string): ResolvedPipeline {
  const cams = Array.from({ length: cameras }, (_, i) =>
    `  - name: cam${i}
    url: "lavfi:testsrc2=size=256x256:rate=${fps}"
    fps: ${fps}`).join("\n");
  return parsePipeline(
    `cameras:
${cams}
model: { engine: onnx }
batching: { max_batch: ${Math.min(cameras, 4)}, max_wait_ms: 20, queue_per_camera: 1 }
mqtt:
  embedded: { port: 0 }
  map: { every_n: 1, width: 64, height: 64 }
http: { enabled: false }
logging: { level: warn }
`,
    name,
  );
}
