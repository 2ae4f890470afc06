/**
 * Pipeline benchmark, three tables:
 *
 * 1. **ONNX** (`--only onnx`): 1, 2 and 4 cameras (ffmpeg `lavfi` sources at 256x256)
 *    through the whole service (ingest, batcher, ONNX engine, MQTT publisher to an embedded
 *    broker) for a fixed number of scored frames: sustained frames per second and
 *    capture-to-publish latency p50 / p99 next to the engine's pure batch throughput at the
 *    same batch size; at each of `--precisions` (fp32 and int8: the built-in weights written
 *    to a temporary model directory and quantized on 4 frames), with int8's frame rate as a
 *    ratio of fp32's in the same run.
 * 2. **No-op engine** (`--only noop`): 1, 4 and 8 cameras at `--noop-fps` each (fast enough
 *    to saturate), scored by {@linkcode NoopEngine}, publishing to a broker in a child
 *    process: frames per second and the service's own CPU milliseconds per frame (the
 *    process's CPU time, `Deno.cpuUsage()`, over the frames scored; ffmpeg and the broker
 *    run in processes of their own, and the no-op engine costs nothing).
 * 3. **Per-frame pieces** (`--only stages`): CPU microseconds per frame of each step of the
 *    frame path, so that table 2 says where the time goes.
 *
 * `deno task bench:pipeline [--only all|onnx|noop|stages] [--cameras 1,2,4] [--frames 40]
 * [--fps 8] [--precisions fp32,int8] [--noop-cameras 1,4,8] [--noop-fps 400] [--seconds 5]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { createLogger } from "../src/core/log.ts";
import { benchPipeline } from "./bench_config.ts";
import { Pipeline } from "../src/pipeline/pipeline.ts";
import { createOnnxEngine } from "../src/infer/onnx/engine.ts";
import { syntheticModel } from "../src/model/synthetic.ts";
import type { EfficientAdModel } from "../src/model/model.ts";
import { readProjectModel, writeProjectModel } from "../src/model/project_format.ts";
import { quantizeModelDir } from "../src/quantize/quantize_dir.ts";
import { NoopEngine } from "../src/infer/noop_engine.ts";
import { EmbeddedBroker } from "../src/publish/broker.ts";
import { FrameAssembler } from "../src/ingest/frame_assembler.ts";
import { resizeRgbExact } from "../src/ingest/exact_resize.ts";
import { BatchPacker, framesToTensor } from "../src/infer/batch_tensor.ts";
import { InferenceStage } from "../src/infer/stage.ts";
import { MessageBuilder } from "../src/publish/messages.ts";
import { topics } from "../src/publish/topics.ts";
import { MqttPublisher } from "../src/publish/publisher.ts";
import { publisherOptions } from "../src/publish/_test_utils.ts";
import type { Frame, ScoredFrame } from "../src/core/frame.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", default: "all" },
    cameras: { type: "string", default: "1,2,4" },
    frames: { type: "string", default: "40" },
    fps: { type: "string", default: "8" },
    precisions: { type: "string", default: "fp32,int8" },
    "noop-cameras": { type: "string", default: "1,4,8" },
    "noop-fps": { type: "string", default: "400" },
    seconds: { type: "string", default: "5" },
    broker: { type: "boolean", default: false },
  },
});
const log = createLogger({ level: "warn" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time of this process so far, milliseconds. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** System (kernel) CPU time of this process so far, milliseconds. */
function sysMs(): number {
  return process.cpuUsage().system / 1000;
}

if (values.broker) {
  // The child process of table 2: a broker outside the measured process.
  await using broker = await EmbeddedBroker.start({ host: "127.0.0.1", port: 0, logger: log });
  console.log(broker.url);
  for await (const _ of Deno.stdin.readable) { /* until the parent closes stdin */ }
  Deno.exit(0);
}

/** A broker in a child process (this script with `--broker`), killed on dispose. */
async function childBroker(): Promise<{ url: string } & AsyncDisposable> {
  const child = new Deno.Command("deno", {
    args: ["run", "-P=service", import.meta.filename!, "--broker"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("Cannot start the benchmark broker: it exited");
    text += value;
  }
  return {
    url: text.trim(),
    async [Symbol.asyncDispose]() {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    },
  };
}

/** The built-in weights as a model directory with an int8 graph (4 calibration frames). */
async function int8ModelDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bench-int8-" });
  await writeProjectModel(dir, syntheticModel());
  const frames = [0, 1, 2, 3].map((k) => ({
    shape: [1, 3, 256, 256],
    data: new Float32Array(3 * 256 * 256).map((_, i) => ((i * 7 + k * 131) % 255) / 255),
  }));
  await quantizeModelDir(dir, frames);
  return dir;
}

async function engineThroughput(
  batch: number,
  runs: number,
  model: EfficientAdModel,
  precision: "fp32" | "int8",
): Promise<number> {
  await using engine = await createOnnxEngine(model, { precision });
  const data = new Float32Array(batch * 3 * 256 * 256).map((_, i) => (i % 255) / 255);
  const input = { shape: [batch, 3, 256, 256], data };
  await engine.run(input);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await engine.run(input);
  return (runs * batch) / ((performance.now() - t0) / 1000);
}

async function onnxTable(): Promise<void> {
  const target = Number(values.frames);
  interface Row {
    precision: "fp32" | "int8";
    cameras: number;
    batch: number;
    fps: number;
    engineFps: number;
    p50: number;
    p99: number;
    dropped: number;
  }
  const rows: Row[] = [];
  const precisions = values.precisions.split(",").map((p) => p.trim()) as ("fp32" | "int8")[];
  const dir = precisions.includes("int8") ? await int8ModelDir() : undefined;
  const int8Model = dir ? await readProjectModel(dir) : undefined;
  for (const precision of precisions) {
    for (const n of values.cameras.split(",").map(Number)) {
      const batch = Math.min(n, 4);
      const config = benchPipeline(n, Number(values.fps), `bench-${n}.yaml`, {
        ...(precision === "int8" && dir ? { modelPath: dir, precision } : {}),
      });
      await using pipeline = await Pipeline.start(config, { logger: log });
      // Warm up: the first frames include ffmpeg start-up and session warm-up.
      while (pipeline.status().inference.frames < 2 * batch) await sleep(50);
      const f0 = pipeline.status().inference.frames;
      const t0 = performance.now();
      while (pipeline.status().inference.frames - f0 < target) await sleep(50);
      const s = pipeline.status();
      const secs = (performance.now() - t0) / 1000;
      const engineFps = await engineThroughput(
        batch,
        Math.max(4, Math.ceil(24 / batch)),
        precision === "int8" && int8Model ? int8Model : syntheticModel(),
        precision,
      );
      rows.push({
        precision,
        cameras: n,
        batch,
        fps: (s.inference.frames - f0) / secs,
        engineFps,
        p50: s.inference.captureToPublishMs.p50,
        p99: s.inference.captureToPublishMs.p99,
        dropped: s.cameras.reduce((a, c) => a + c.framesDropped, 0),
      });
      console.error(`${precision} ${n} camera(s): ${rows.at(-1)!.fps.toFixed(2)} frames/s`);
    }
  }
  if (dir) await Deno.remove(dir, { recursive: true });
  console.log(
    `\nPipeline, EfficientAD-S 256x256 (built-in weights), onnx cpu, ${navigator.hardwareConcurrency} CPUs, ` +
      `${target} frames after warm-up, sources at ${values.fps} fps each\n`,
  );
  console.log(
    "| precision | cameras | max batch | pipeline frames/s | vs fp32 | engine-only frames/s | overhead | capture->publish p50 ms | p99 ms | frames dropped (saturation) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const base = rows.find((b) => b.precision === "fp32" && b.cameras === r.cameras);
    const ratio = base ? `${(r.fps / base.fps).toFixed(2)}x` : "";
    console.log(
      `| ${r.precision} | ${r.cameras} | ${r.batch} | ${r.fps.toFixed(2)} | ${ratio} | ${
        r.engineFps.toFixed(2)
      } | ${((1 - r.fps / r.engineFps) * 100).toFixed(1)} % | ${r.p50.toFixed(0)} | ${
        r.p99.toFixed(0)
      } | ${r.dropped} |`,
    );
  }
}

async function noopTable(): Promise<void> {
  const fps = Number(values["noop-fps"]);
  const seconds = Number(values.seconds);
  await using broker = await childBroker();
  interface Row {
    cameras: number;
    batch: number;
    fps: number;
    cpuMsPerFrame: number;
    sysMsPerFrame: number;
    meanBatch: number;
    p50: number;
    dropped: number;
    published: number;
    mqttDropped: number;
  }
  const rows: Row[] = [];
  for (const n of values["noop-cameras"].split(",").map(Number)) {
    const maxBatch = Math.min(n, 8);
    const config = benchPipeline(n, fps, `bench-noop-${n}.yaml`, {
      mqttUrl: broker.url,
      maxBatch,
      queuePerCamera: 2,
    });
    await using pipeline = await Pipeline.start(config, { logger: log, engine: new NoopEngine() });
    while (pipeline.status().inference.frames < 20 * n) await sleep(50);
    await sleep(1000); // every ffmpeg at full rate
    const s0 = pipeline.status();
    const c0 = cpuMs();
    const k0 = sysMs();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = cpuMs();
    const k1 = sysMs();
    const t1 = performance.now();
    const s1 = pipeline.status();
    const frames = s1.inference.frames - s0.inference.frames;
    const batches = s1.inference.batches - s0.inference.batches;
    const dropped = (s: typeof s0) => s.cameras.reduce((a, c) => a + c.framesDropped, 0);
    rows.push({
      cameras: n,
      batch: maxBatch,
      fps: frames / ((t1 - t0) / 1000),
      cpuMsPerFrame: (c1 - c0) / frames,
      sysMsPerFrame: (k1 - k0) / frames,
      meanBatch: frames / batches,
      p50: s1.inference.captureToPublishMs.p50,
      dropped: dropped(s1) - dropped(s0),
      published: s1.mqtt.published - s0.mqtt.published,
      mqttDropped: s1.mqtt.dropped - s0.mqtt.dropped,
    });
    console.error(`no-op, ${n} camera(s): ${rows.at(-1)!.fps.toFixed(0)} frames/s`);
  }
  console.log(
    `\nPipeline, no-op engine, ${navigator.hardwareConcurrency} CPUs, lavfi testsrc2 256x256 at ` +
      `${fps} fps per camera, ${seconds} s after warm-up, MQTT to a broker in another process, ` +
      `maps 64x64 every frame\n`,
  );
  console.log(
    "| cameras | max batch | mean batch | frames/s | service CPU ms / frame | of which kernel | capture->publish p50 ms | frames dropped (batcher) | MQTT messages published | MQTT dropped |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.cameras} | ${r.batch} | ${r.meanBatch.toFixed(2)} | ${r.fps.toFixed(0)} | ${
        r.cpuMsPerFrame.toFixed(3)
      } | ${r.sysMsPerFrame.toFixed(3)} | ${
        r.p50.toFixed(1)
      } | ${r.dropped} | ${r.published} | ${r.mqttDropped} |`,
    );
  }
}

function testFrame(seq: number, width = 256, height = 256): Frame {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7 + seq * 13) & 0xff;
  return { camera: "cam0", seq, capturedAt: Date.now(), width, height, rgb };
}

function testScored(frame: Frame): ScoredFrame {
  const data = new Float32Array(256 * 256);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001 + frame.seq);
  return {
    frame,
    score: 1.5,
    normalizedScore: 0.25,
    threshold: 2,
    anomalous: false,
    map: { shape: [1, 256, 256], data },
    modelVersion: "efficientad-s@1",
    batchSize: 4,
    inferenceMs: 1.25,
    scoredAt: Date.now(),
  };
}

interface StageRow {
  piece: string;
  wallUs: number;
  cpuUs: number;
}

/** Runs `fn` (which handles `perCall` frames) for about `ms`, after a warm-up. */
async function measure(
  piece: string,
  perCall: number,
  fn: () => unknown | Promise<unknown>,
  ms = 600,
): Promise<StageRow> {
  for (let i = 0; i < 20; i++) await fn();
  let calls = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 10; i++) await fn();
    calls += 10;
  }
  const wall = performance.now() - t0;
  const cpu = cpuMs() - c0;
  const frames = calls * perCall;
  return { piece, wallUs: (wall * 1000) / frames, cpuUs: (cpu * 1000) / frames };
}

/**
 * Reads `frames` 256x256 RGB frames from an ffmpeg that writes them as fast as it can (its
 * CPU is its own process's): this process's CPU per frame of reading and cutting them.
 */
async function ffmpegRead(how: string, byob: boolean, frames = 3000): Promise<StageRow> {
  const frameBytes = 256 * 256 * 3;
  const child = new Deno.Command("ffmpeg", {
    args: [
      ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"],
      "color=c=gray:size=256x256:rate=1000",
      ...["-frames:v", String(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const assembler = new FrameAssembler(frameBytes);
  let got = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  if (byob) {
    const reader = child.stdout.getReader({ mode: "byob" });
    for (;;) {
      const { value, done } = await reader.read(assembler.readView());
      if (done || value === undefined) break;
      if (assembler.commit(value) !== undefined) got++;
    }
  } else {
    for await (const chunk of child.stdout) got += assembler.push(chunk).length;
  }
  const wall = performance.now() - t0;
  const cpu = cpuMs() - c0;
  await child.status;
  return {
    piece: `read: ffmpeg's pipe, ${how}`,
    wallUs: (wall * 1000) / got,
    cpuUs: (cpu * 1000) / got,
  };
}

async function stagesTable(): Promise<void> {
  const rows: StageRow[] = [];
  const frame = testFrame(0);
  // 1. Read: a frame's bytes in the 64 KiB chunks a pipe delivers.
  const assembler = new FrameAssembler(frame.rgb.length);
  const chunks: Uint8Array[] = [];
  for (let p = 0; p < frame.rgb.length; p += 65536) chunks.push(frame.rgb.slice(p, p + 65536));
  rows.push(
    await measure("read: assemble 256x256 RGB from 64 KiB chunks (copying)", 1, () => {
      for (const c of chunks) assembler.push(c);
    }),
  );
  rows.push(await ffmpegRead("default reader + push (before)", false));
  rows.push(await ffmpegRead("BYOB reader into the frame (the camera's loop)", true));
  rows.push(
    await measure(
      "resize: exact, source at the model's size (none)",
      1,
      () => resizeRgbExact(frame.rgb, { width: 256, height: 256 }, { width: 256, height: 256 }),
    ),
  );
  const vga = testFrame(0, 640, 480);
  rows.push(
    await measure(
      "resize: exact, 640x480 -> 256x256 (sources not at the model's size)",
      1,
      () => resizeRgbExact(vga.rgb, { width: 640, height: 480 }, { width: 256, height: 256 }),
      400,
    ),
  );
  const batch = [0, 1, 2, 3].map((i) => testFrame(i));
  rows.push(
    await measure(
      "pack: framesToTensor (new buffer per batch), batch of 4",
      4,
      () => framesToTensor(batch),
    ),
  );
  const packer = new BatchPacker();
  rows.push(
    await measure(
      "pack: BatchPacker (reused buffer, the stage's), batch of 4",
      4,
      () => packer.pack(batch),
    ),
  );
  // The whole inference stage around the no-op engine: pack, run, judge, scored frames.
  {
    await using engine = new NoopEngine();
    const stage = new InferenceStage({
      engine,
      model: { version: "v1", thresholds: { threshold: 2, min: 0, max: 4 } },
      threshold: { policy: "model" },
    });
    const writer = stage.writable.getWriter();
    const reader = stage.readable.getReader();
    rows.push(
      await measure(
        "infer stage (no-op engine): pack + judge + scored frames, batch of 4",
        4,
        async () => {
          await writer.write(batch);
          for (let i = 0; i < 4; i++) await reader.read();
        },
      ),
    );
    await writer.close();
    reader.releaseLock();
  }
  const scored = testScored(frame);
  const build = new MessageBuilder({ topics: topics("efficientad"), qos: 1, retainStatus: true });
  rows.push(await measure("score message (JSON)", 1, () => build.score(scored, Date.now())));
  const build64 = new MessageBuilder({
    topics: topics("efficientad"),
    qos: 1,
    retainStatus: true,
    mapSize: [64, 64],
  });
  rows.push(
    await measure("map message: PNG 64x64 from a 256x256 map", 1, () => build64.map(scored)),
  );
  // MQTT: the publisher's whole per-frame work (score + map + events), sent and acknowledged.
  {
    await using broker = await childBroker();
    for (const [everyN, label] of [[0, "score only"], [1, "score + map"]] as const) {
      for (const qos of [0, 1] as const) {
        await using publisher = new MqttPublisher(
          publisherOptions(broker.url, {
            qos,
            map: { everyN, width: 64, height: 64 },
            logger: log,
          }),
        );
        await publisher.waitConnected();
        let seq = 0;
        const frames = Array.from({ length: 64 }, (_, i) => testScored(testFrame(i)));
        rows.push(
          await measure(`publish (${label}), QoS ${qos}, 64 frames then flush`, 64, async () => {
            for (const s of frames) {
              publisher.publishFrame({ ...s, frame: { ...s.frame, seq: seq++ } });
            }
            await publisher.flush();
          }),
        );
      }
    }
  }
  console.log(
    `\nThe frame path's pieces, per frame (256x256 frames, ${navigator.hardwareConcurrency} CPUs)\n`,
  );
  console.log("| piece | wall µs / frame | CPU µs / frame |");
  console.log("|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.piece} | ${r.wallUs.toFixed(1)} | ${r.cpuUs.toFixed(1)} |`);
  }
}

const only = values.only;
if (only === "all" || only === "onnx") await onnxTable();
if (only === "all" || only === "noop") await noopTable();
if (only === "all" || only === "stages") await stagesTable();
