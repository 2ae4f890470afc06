/**
 * Pipeline benchmark: 1, 2 and 4 cameras (ffmpeg `lavfi` sources at 256x256) through the
 * whole service (ingest, batcher, ONNX engine, MQTT publisher to an embedded broker) for a
 * fixed number of scored frames; prints sustained frames per second and capture-to-publish
 * latency p50 / p99 next to the engine's pure batch throughput at the same batch size.
 *
 * `deno run -A tools/bench_pipeline.ts [--cameras 1,2,4] [--frames 40] [--fps 8]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger } from "../src/core/log.ts";
import { benchPipeline } from "./bench_config.ts";
import { Pipeline } from "../src/pipeline/pipeline.ts";
import { createOnnxEngine } from "../src/infer/onnx/engine.ts";
import { syntheticModel } from "../src/model/synthetic.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cameras: { type: "string", default: "1,2,4" },
    frames: { type: "string", default: "40" },
    fps: { type: "string", default: "8" },
  },
});
const target = Number(values.frames);
const log = createLogger({ level: "warn" });

async function engineThroughput(batch: number, runs: number): Promise<number> {
  await using engine = await createOnnxEngine(syntheticModel());
  const data = new Float32Array(batch * 3 * 256 * 256).map((_, i) => (i % 255) / 255);
  const input = { shape: [batch, 3, 256, 256], data };
  await engine.run(input);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await engine.run(input);
  return (runs * batch) / ((performance.now() - t0) / 1000);
}

interface Row {
  cameras: number;
  batch: number;
  fps: number;
  engineFps: number;
  p50: number;
  p99: number;
  dropped: number;
}
const rows: Row[] = [];
for (const n of values.cameras.split(",").map(Number)) {
  const batch = Math.min(n, 4);
  const config = benchPipeline(n, Number(values.fps), `bench-${n}.yaml`);
  await using pipeline = await Pipeline.start(config, { logger: log });
  // Warm up: the first frames include ffmpeg start-up and session warm-up.
  while (pipeline.status().inference.frames < 2 * batch) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const f0 = pipeline.status().inference.frames;
  const t0 = performance.now();
  while (pipeline.status().inference.frames - f0 < target) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const s = pipeline.status();
  const secs = (performance.now() - t0) / 1000;
  const engineFps = await engineThroughput(batch, Math.max(4, Math.ceil(24 / batch)));
  rows.push({
    cameras: n,
    batch,
    fps: (s.inference.frames - f0) / secs,
    engineFps,
    p50: s.inference.captureToPublishMs.p50,
    p99: s.inference.captureToPublishMs.p99,
    dropped: s.cameras.reduce((a, c) => a + c.framesDropped, 0),
  });
  console.error(`${n} camera(s): ${rows.at(-1)!.fps.toFixed(2)} frames/s`);
}

console.log(
  `\nPipeline, EfficientAD-S 256x256 (built-in weights), onnx cpu, ${navigator.hardwareConcurrency} CPUs, ` +
    `${target} frames after warm-up, sources at ${values.fps} fps each\n`,
);
console.log(
  "| cameras | max batch | pipeline frames/s | engine-only frames/s | overhead | capture->publish p50 ms | p99 ms | frames dropped (saturation) |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.cameras} | ${r.batch} | ${r.fps.toFixed(2)} | ${r.engineFps.toFixed(2)} | ${
      ((1 - r.fps / r.engineFps) * 100).toFixed(1)
    } % | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ${r.dropped} |`,
  );
}
