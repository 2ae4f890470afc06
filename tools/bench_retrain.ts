/**
 * Retraining benchmark: the inspection frame rate while a training run works beside it,
 * against the rate without one. The whole service runs in-process (ffmpeg `lavfi` cameras
 * at 256x256, batcher, ONNX engine with the built-in model, MQTT publisher to an embedded
 * broker; retraining off), by default with sources faster than the CPU scores, so that
 * inspection is saturated (`--fps 2` leaves headroom on 2 cores). The trainer is the
 * service's own: {@linkcode TrainProcess} running `main.ts train` under `nice -n 10` on PNG
 * frames of a `lavfi` scene, cancelled when its phase ends.
 *
 * Rows: inspection alone; inspection + training (nice 10); with `--no-nice` also
 * inspection + training (nice 0); training alone. Inspection frames/s is the scored-frame
 * count over a window of wall time; capture->publish p50 / p99 come from the score messages
 * published in that window (the service's own latency window also holds earlier phases).
 *
 * Training s/step runs from the trainer's "training" line (teacher statistics done, the
 * step loop starts) to its last progress line. The trainer writes one every 10 steps when
 * its output is a pipe, so a phase keeps inspection running after its window until a
 * progress line arrives (at most `--train-wait` seconds); with none, the table gives the
 * lower bound `> elapsed / 10`.
 *
 * `deno task bench:retrain [--window 40] [--cameras 1] [--fps 8] [--no-nice] [--quick]`
 *
 * @module
 */
import { errorMessage } from "../src/core/errors.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { cpus, loadavg } from "node:os";
import { createLogger } from "../src/core/log.ts";
import { benchPipeline } from "./bench_config.ts";
import { nearestRank } from "../src/core/percentiles.ts";
import { Pipeline } from "../src/pipeline/pipeline.ts";
import { TestSubscriber } from "../tests/support/mqtt_subscriber.ts";
import { defaultTrainCommand, TrainProcess } from "../src/retrain/train_process.ts";
import type { TrainProgress } from "../src/train/progress_event.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    window: { type: "string", default: "40" },
    cameras: { type: "string", default: "1" },
    fps: { type: "string", default: "8" },
    images: { type: "string", default: "20" },
    steps: { type: "string", default: "1000" },
    "alone-steps": { type: "string", default: "20" },
    "train-wait": { type: "string", default: "300" },
    "no-nice": { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
});
const windowS = values.quick ? 10 : Number(values.window);
const cameras = Number(values.cameras);
const aloneSteps = values.quick ? 10 : Number(values["alone-steps"]);
const trainWaitS = values.quick ? 60 : Number(values["train-wait"]);
const steps = Number(values.steps);
const images = Number(values.images);
/** The trainer writes a progress line every this many steps when its output is a pipe. */
const LOG_EVERY = 10;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const log = createLogger({ level: "warn" });

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const done = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Writes `count` PNG frames of a `lavfi` scene into `dir` with ffmpeg. */
async function writeFrames(dir: string, count: number, signal: AbortSignal): Promise<void> {
  const { success, stderr } = await new Deno.Command("ffmpeg", {
    args: ["-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=256x256:rate=4"]
      .concat(["-frames:v", String(count), `${dir}/f%03d.png`]),
    stdout: "null",
    stderr: "piped",
    signal,
  }).output();
  if (!success) {
    throw new Error(`Cannot write training frames: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

/** The CPU model (node's `os.cpus()` reads /proc/cpuinfo, which Deno reads only with -A). */
function cpuModel(): string {
  return cpus()[0]?.model.trim() || "unknown CPU";
}

/** A training run and when its step loop started and each progress line arrived. */
class Training implements AsyncDisposable {
  readonly proc: TrainProcess;
  /** `performance.now()` of the "training" line: the step loop starts (step 0). */
  loopStart: number | undefined;
  /** The progress lines, with `performance.now()` on arrival. */
  readonly progress: { at: number; step: number }[] = [];
  #ended = false;

  constructor(dataDir: string, outDir: string, nice: number, signal: AbortSignal) {
    this.proc = new TrainProcess({
      dataDir,
      outDir,
      steps,
      extraArgs: ["--engine", "onnx", "--seed", "0"],
      command: defaultTrainCommand(),
      nice,
      cwd: ROOT,
      signal,
      onProgress: (p: TrainProgress) => this.progress.push({ at: performance.now(), step: p.step }),
    });
    void this.proc.result.then(() => this.#ended = true);
  }

  /**
   * Waits until the step loop starts (TrainProcess reports steps, not this, so the output
   * lines are polled for the trainer's "training size=..." line).
   *
   * @throws {Error} when the trainer exits first.
   */
  async started(signal: AbortSignal): Promise<void> {
    while (this.loopStart === undefined) {
      if (this.proc.lastLines().some((l) => /\btraining size=/.test(l))) {
        this.loopStart = performance.now();
      } else if (this.#ended) {
        const r = await this.proc.result;
        throw new Error(r.error ?? "Cannot train: the trainer exited before its first step");
      } else {
        await sleep(100, signal);
      }
    }
  }

  /**
   * Waits for a progress line at or after `step`, for at most `ms`.
   *
   * @throws {Error} when the trainer exits first.
   */
  async reach(step: number, ms: number, signal: AbortSignal): Promise<void> {
    const until = performance.now() + ms;
    while ((this.progress.at(-1)?.step ?? 0) < step && performance.now() < until) {
      if (this.#ended) {
        const r = await this.proc.result;
        throw new Error(r.error ?? "Cannot train: the trainer exited early");
      }
      await sleep(100, signal);
    }
  }

  /** Seconds per step so far: exact, or a lower bound when no progress line came yet. */
  secondsPerStep(): { value: number; bound: boolean } {
    const start = this.loopStart ?? performance.now();
    const last = this.progress.at(-1);
    if (last === undefined || last.step === 0) {
      return { value: (performance.now() - start) / 1000 / LOG_EVERY, bound: true };
    }
    return { value: (last.at - start) / 1000 / last.step, bound: false };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.proc.cancel();
  }
}

/** Inspection throughput and latency over one window. */
interface Inspection {
  fps: number;
  p50: number;
  p99: number;
}

async function inspect(
  pipeline: Pipeline,
  scores: TestSubscriber,
  signal: AbortSignal,
): Promise<Inspection> {
  const m0 = scores.messages.length;
  const f0 = pipeline.status().inference.frames;
  const t0 = performance.now();
  await sleep(windowS * 1000, signal);
  const frames = pipeline.status().inference.frames - f0;
  const secs = (performance.now() - t0) / 1000;
  const latencies = scores.messages.slice(m0).map((m) =>
    (JSON.parse(m.text) as { latency_ms: number }).latency_ms
  ).sort((a, b) => a - b);
  return {
    fps: frames / secs,
    p50: nearestRank(latencies, 0.5),
    p99: nearestRank(latencies, 0.99),
  };
}

interface Row {
  name: string;
  inspection?: Inspection;
  train?: { value: number; bound: boolean };
}

async function bench(signal: AbortSignal): Promise<void> {
  // Other work on the machine skews every row: the header shows the load found at start.
  const load = loadavg()[0] ?? NaN;
  await using tmp = await (async () => {
    const path = await Deno.makeTempDir({ prefix: "bench-retrain-" });
    return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
  })();
  const dataDir = `${tmp.path}/frames`;
  await Deno.mkdir(dataDir);
  await writeFrames(dataDir, images, signal);
  const niceLevels = values["no-nice"] ? [10, 0] : [10];
  const rows: Row[] = [];
  let engine = "";
  let run = 0;
  {
    const batch = Math.min(cameras, 4);
    const config = benchPipeline(cameras, Number(values.fps), "bench-retrain.yaml");
    await using pipeline = await Pipeline.start(config, { logger: log });
    engine = pipeline.status().model.engine;
    await using scores = await TestSubscriber.connect(pipeline.mqttUrl, {
      topics: [`${config.mqtt.topicPrefix}/+/score`],
      qos: 0,
      client: { protocolVersion: 4 },
    });
    // Warm up: ffmpeg start-up and the session's first runs.
    const warm = performance.now();
    while (pipeline.status().inference.frames < 4 * batch || performance.now() - warm < 5000) {
      await sleep(100, signal);
    }
    rows.push({ name: "inspection alone", inspection: await inspect(pipeline, scores, signal) });
    console.error(`inspection alone: ${rows.at(-1)!.inspection!.fps.toFixed(2)} frames/s`);
    for (const nice of niceLevels) {
      await using training = new Training(dataDir, `${tmp.path}/out${run++}`, nice, signal);
      await training.started(signal);
      const inspection = await inspect(pipeline, scores, signal);
      // Inspection keeps running until the trainer reports steps done under it.
      await training.reach(1, trainWaitS * 1000, signal);
      rows.push({
        name: `inspection + training (nice ${nice})`,
        inspection,
        train: training.secondsPerStep(),
      });
      console.error(`${rows.at(-1)!.name}: ${inspection.fps.toFixed(2)} frames/s`);
    }
  }
  {
    await using training = new Training(dataDir, `${tmp.path}/out${run++}`, niceLevels[0]!, signal);
    await training.started(signal);
    await training.reach(aloneSteps, trainWaitS * 1000, signal);
    rows.push({ name: "training alone", train: training.secondsPerStep() });
  }

  const offered = cameras * Number(values.fps);
  const load_ = (rows[0]?.inspection?.fps ?? 0) < offered * 0.95
    ? "more than the CPU scores: saturated"
    : "less than the CPU scores: headroom";
  console.log(
    `\nRetraining vs inspection, EfficientAD-S 256x256: ${navigator.hardwareConcurrency} CPUs ` +
      `(${cpuModel()}, load average ${
        load.toFixed(2)
      } at start), inspection ${engine} with the built-in weights, ${cameras} camera(s) ` +
      `at ${values.fps} fps (${load_}), ${windowS} s windows; trainer \`main.ts train ` +
      `--engine onnx\` (untrained teacher, no penalty images) on ${images} PNG frames, ` +
      `s/step from its step loop start to its last progress line (one every ${LOG_EVERY} ` +
      `steps; training alone: ${aloneSteps} steps)\n`,
  );
  const alone = rows[0]?.inspection?.fps ?? NaN;
  console.log(
    "| run | inspection frames/s | change vs alone | capture->publish p50 ms | p99 ms | training s/step |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    const i = r.inspection;
    const change = i ? `${((i.fps / alone - 1) * 100).toFixed(1)} %` : "-";
    const train = r.train ? `${r.train.bound ? "> " : ""}${r.train.value.toFixed(2)}` : "-";
    console.log(
      `| ${r.name} | ${i ? i.fps.toFixed(2) : "-"} | ${change} | ${i ? i.p50.toFixed(0) : "-"} | ${
        i ? i.p99.toFixed(0) : "-"
      } | ${train} |`,
    );
  }
}

const abort = new AbortController();
const interrupt = () => abort.abort(new Error("Cannot finish the benchmark: interrupted"));
Deno.addSignalListener("SIGINT", interrupt);
try {
  await bench(abort.signal);
} catch (e) {
  if (!abort.signal.aborted) throw e;
  console.error(errorMessage(e));
  Deno.exitCode = 130;
} finally {
  Deno.removeSignalListener("SIGINT", interrupt);
}
