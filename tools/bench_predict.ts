/**
 * `predict`'s own cost: per-image time of the bare engine beside the whole of `predict`
 * (reading and decoding the inputs, scoring, heatmap PNGs, `.npy` files; not the CLI's
 * start and `summary.json`, which do not grow with the images), in one process on one
 * engine, printed as a table.
 *
 * `deno task bench:predict [--model <path>] [--images <dir>] [--n 16] [--batch 8] [--runs 3]
 * [--threads <n>] [--cold]`
 *
 * Each trial times `engine.run` alone on a batch of the same images, then `predict` on 1
 * and on N images, so that its cost per image is (t(N) - t(1)) / (N - 1): the start (the
 * worker, the first batch) cancels out. Its own cost is that minus the engine's time per
 * image alone; "beside" is the same difference with the time spent inside its own
 * `engine.run` calls (less sensitive to the load, but blind to the engine slowed by
 * work beside it). CPU time (of all the process's threads, `process.cpuUsage()`) per image, of the
 * engine alone and of `predict`, is the least sensitive to load. Medians of `--runs` trials after a warm-up trial. Two rows: the
 * CLI's pipelined `predictFiles` and the sequential `readInputs` + `predict` (the
 * implementation before the pipeline), on the same engine in the same run. `--cold` adds
 * the first and second runs of fresh engines at batch 1 and at `--batch`: a CLI run's only
 * engine run is a first one, and a first run costs more (ONNX Runtime allocates and
 * plans on it), so `predict` on 8 images minus 1 image in two CLI processes measures
 * that too. Without `--model`,
 * the CLI's built-in untrained EfficientAD-S is used (same graph and cost as a trained one).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import process from "node:process";
import { median } from "../src/core/percentiles.ts";
import { stack } from "../src/core/tensor.ts";
import { createEngine } from "../src/infer/create.ts";
import { openArtifact } from "../src/cli/args.ts";
import { predict, predictFiles, readInputs } from "../src/cli/predict.ts";
import type { InferenceEngine } from "../src/infer/engine.ts";
import { cpuCount } from "../src/infer/onnx/session.ts";
import { createLogger } from "../src/core/log.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    images: { type: "string", default: "../shared/datasets/mvtec_ad_256/bottle/test/broken_large" },
    n: { type: "string", default: "16" },
    batch: { type: "string", default: "8" },
    runs: { type: "string", default: "3" },
    threads: { type: "string" },
    cold: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const batch = Number(values.batch);
const runs = Number(values.runs);
const threads = values.threads ? Number(values.threads) : cpuCount();

const all = [...Deno.readDirSync(values.images)].filter((e) => /\.(png|jpe?g)$/i.test(e.name))
  .map((e) => join(values.images, e.name)).sort();
if (all.length === 0) throw new Error(`Cannot bench predict: no images in ${values.images}`);
const paths = Array.from({ length: n }, (_, i) => all[i % all.length]!);

const log = createLogger({ level: "error" });
const artifact = await openArtifact(values.model !== undefined ? { model: values.model } : {}, log);
await using engine = await createEngine(artifact, { type: "onnx", intraOpThreads: threads });
const outDir = await Deno.makeTempDir({ prefix: "bench_predict_" });

/** The engine, with the time spent in its `run` counted. */
let inEngine = 0;
const timed: InferenceEngine = {
  description: engine.description,
  scoreKind: engine.scoreKind,
  inputSize: engine.inputSize,
  async run(batch, options) {
    const t0 = performance.now();
    try {
      return await engine.run(batch, options);
    } finally {
      inEngine += performance.now() - t0;
    }
  },
  [Symbol.asyncDispose]: () => Promise.resolve(),
};

/** CPU time of this process (all threads: ONNX Runtime's, the worker's), in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Wall time, time in the engine and CPU time of one call, in ms. */
async function measure(
  fn: () => Promise<unknown>,
): Promise<{ wall: number; engine: number; cpu: number }> {
  inEngine = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  await fn();
  return { wall: performance.now() - t0, engine: inEngine, cpu: cpuMs() - c0 };
}

const ways = {
  "pipelined (predictFiles, as the CLI)": (paths: string[], dir: string) =>
    predictFiles(timed, paths, { outDir: dir, batchSize: batch }),
  "sequential (readInputs + predict)": async (paths: string[], dir: string) =>
    predict(timed, await readInputs(paths, engine.inputSize), { outDir: dir, batchSize: batch }),
};
type Way = keyof typeof ways;

try {
  const inputs = await readInputs(paths.slice(0, batch), engine.inputSize);
  const input = stack(inputs.map((i) => i.image));
  const load0 = Deno.loadavg()[0]!.toFixed(2);
  // Trials interleave the engine alone and both ways, so that a change of load hits all.
  const engineAlone: number[] = [];
  const engineCpu: number[] = [];
  const perWay = new Map<
    Way,
    { perImage: number[]; engine: number[]; own: number[]; cpu: number[] }
  >();
  for (let r = 0; r <= runs; r++) { // trial 0 is a warm-up
    const e = await measure(() => timed.run(input));
    for (const [way, run] of Object.entries(ways) as [Way, typeof ways[Way]][]) {
      const one = await measure(() => run(paths.slice(0, 1), join(outDir, `${r}-1`)));
      const all = await measure(() => run(paths, join(outDir, `${r}-${n}`)));
      if (r === 0) continue;
      const stats = perWay.get(way) ?? { perImage: [], engine: [], own: [], cpu: [] };
      stats.cpu.push((all.cpu - one.cpu) / (n - 1));
      stats.perImage.push((all.wall - one.wall) / (n - 1));
      stats.engine.push((all.engine - one.engine) / (n - 1));
      stats.own.push(((all.wall - all.engine) - (one.wall - one.engine)) / (n - 1));
      perWay.set(way, stats);
      console.error(
        `trial ${r}, ${way}: 1 image ${one.wall.toFixed(0)} ms, ${n} images ${
          all.wall.toFixed(0)
        } ms, of which engine ${all.engine.toFixed(0)} ms`,
      );
    }
    if (r > 0) engineAlone.push(e.wall / batch);
    if (r > 0) engineCpu.push(e.cpu / batch);
  }
  const engineMs = median(engineAlone);
  const load1 = Deno.loadavg()[0]!.toFixed(2);
  console.log(
    `\npredict vs engine: ${artifact.path}, ${engine.inputSize.join("x")}, batch ${batch}, ` +
      `${threads} threads, ${cpuCount()} CPUs, N = ${n}, medians of ${runs} trials, ` +
      `1-minute load ${load0} before, ${load1} after\n`,
  );
  console.log(
    "| predict | engine alone ms/image | predict ms/image | its engine.run ms/image | " +
      "predict - engine alone | own / engine alone | own beside engine.run | own beside / engine | " +
      "CPU ms/image: engine alone | CPU: predict | CPU: own / engine |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const [way, st] of perWay) {
    const perImage = median(st.perImage);
    const own = perImage - engineMs;
    const beside = median(st.own);
    console.log(
      `| ${way} | ${engineMs.toFixed(1)} | ${perImage.toFixed(1)} | ${
        median(st.engine).toFixed(1)
      } | ${own.toFixed(1)} | ${(own / engineMs * 100).toFixed(1)} % | ${beside.toFixed(1)} | ${
        (beside / engineMs * 100).toFixed(1)
      } % | ${median(engineCpu).toFixed(0)} | ${median(st.cpu).toFixed(0)} | ${
        ((median(st.cpu) / median(engineCpu) - 1) * 100).toFixed(1)
      } % |`,
    );
  }
  if (values.cold) {
    // As the CLI runs: a fresh engine whose first run is this batch (N = 1, then N = batch).
    const cold = async (k: number) => {
      await using fresh = await createEngine(artifact, { type: "onnx", intraOpThreads: threads });
      const t0 = performance.now();
      await fresh.run(stack(inputs.slice(0, k).map((i) => i.image)));
      const first = performance.now() - t0;
      const t1 = performance.now();
      await fresh.run(stack(inputs.slice(0, k).map((i) => i.image)));
      return { first, second: performance.now() - t1 };
    };
    const one = await cold(1);
    const all = await cold(batch);
    console.log(
      `\nA fresh engine (as in one CLI run), ms: batch 1 first run ${one.first.toFixed(0)}, ` +
        `second ${one.second.toFixed(0)}; batch ${batch} first run ${all.first.toFixed(0)}, ` +
        `second ${all.second.toFixed(0)}. (t(${batch}) - t(1)) / ${batch - 1} of first runs: ${
          ((all.first - one.first) / (batch - 1)).toFixed(1)
        } ms/image, of second runs: ${((all.second - one.second) / (batch - 1)).toFixed(1)}.`,
    );
  }
} finally {
  await Deno.remove(outDir, { recursive: true });
}
