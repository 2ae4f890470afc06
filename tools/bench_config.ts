/**
 * The pipeline the benchmarks run: `cameras` lavfi test cameras at 256x256 and `fps`, the
 * built-in model on ONNX Runtime, batches of up to 4, an embedded broker on a free port
 * (or the broker at `mqttUrl`), small maps for every frame (so that publishing costs what
 * it costs), no HTTP.
 *
 * @module
 */
import { parsePipeline, type ResolvedPipeline } from "../src/config/mod.ts";

/** Options of {@linkcode benchPipeline}. */
export interface BenchPipelineOptions {
  /** Publish to this broker instead of an embedded one. */
  readonly mqttUrl?: string;
  /** The batcher's `max_batch`. Default `min(cameras, 4)`. */
  readonly maxBatch?: number;
  /** The batcher's `queue_per_camera`. Default 1. */
  readonly queuePerCamera?: number;
  /** `model.path` (a project model directory). Default: the built-in model. */
  readonly modelPath?: string;
  /** `model.precision`. Default fp32. */
  readonly precision?: "fp32" | "int8";
}

/** The benchmarks' pipeline; see the module doc. */
export function benchPipeline(
  cameras: number,
  fps: number,
  name: string,
  options: BenchPipelineOptions = {},
): ResolvedPipeline {
  const cams = Array.from({ length: cameras }, (_, i) =>
    `  - name: cam${i}
    url: "lavfi:testsrc2=size=256x256:rate=${fps}"
    fps: ${fps}`).join("\n");
  const broker = options.mqttUrl !== undefined
    ? `url: "${options.mqttUrl}"`
    : "embedded: { port: 0 }";
  return parsePipeline(
    `cameras:
${cams}
model: { engine: onnx${options.modelPath ? `, path: "${options.modelPath}"` : ""}${
      options.precision ? `, precision: ${options.precision}` : ""
    } }
batching: { max_batch: ${
      options.maxBatch ?? Math.min(cameras, 4)
    }, max_wait_ms: 20, queue_per_camera: ${options.queuePerCamera ?? 1} }
mqtt:
  ${broker}
  map: { every_n: 1, width: 64, height: 64 }
http: { enabled: false }
logging: { level: warn }
`,
    name,
  );
}
