/**
 * Compares the int8 calibration methods on a real model: for each method, the int8 graph's
 * maps against float32's on held-out frames (Pearson correlation of the anomaly maps,
 * worst |difference| relative to the float32 map range, both with float32's quantiles so
 * that only the quantization differs), the raw-score correlation, and the image AUROC of
 * good against defective test images of each graph with its own quantiles.
 *
 * `deno task quant:compare [--model ../shared/fixtures/efficientad-s/model.pth]
 *   [--data ../shared/datasets/mvtec_ad_256/bottle] [--calib 16] [--per-class 8]
 *   [--threads N]`
 *
 * Calibration frames: the first `--calib` of `train/good`; evaluation: up to `--per-class`
 * images of each `test/*` folder. The statistics are collected once (with histograms) and
 * every method chooses its ranges from them, as `quantizeModel` would.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { loadArtifact } from "../src/model/artifact.ts";
import { loadImageTensor } from "../src/train/data.ts";
import { listImages } from "../src/image/list.ts";
import { buildEfficientAdGraph } from "../src/infer/onnx/efficientad_graph.ts";
import { calibrationFromMaps } from "../src/model/calibration.ts";
import { auroc } from "../src/eval/metrics.ts";
import type { CalibrationMethod } from "../src/model/model.ts";
import { type Quantiles, quantilesOf } from "../src/model/state_dict.ts";
import { collectStats, rangeOf } from "../src/quantize/activation_ranges.ts";
import { prepareGraph, quantizableTensors, quantizeGraph } from "../src/quantize/qdq_graph.ts";
import { withQuantiles } from "../src/quantize/graph_quantiles.ts";
import { type FrameMaps, graphMaps } from "../src/quantize/graph_maps.ts";
import { cpuCount } from "../src/infer/onnx/session.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "../shared/fixtures/efficientad-s/model.pth" },
    data: { type: "string", default: "../shared/datasets/mvtec_ad_256/bottle" },
    calib: { type: "string", default: "16" },
    "per-class": { type: "string", default: "8" },
    threads: { type: "string" },
  },
});
const threads = values.threads ? Number(values.threads) : cpuCount();

const artifact = await loadArtifact(values.model);
if (artifact.kind !== "efficientad") throw new Error(`Cannot compare: ${values.model} is ONNX`);
const model = artifact.model;
const size = model.config.imageSize;
const load = async (paths: string[]) =>
  await Promise.all(paths.map((p) => loadImageTensor(p, size)));
const calibFrames = await load(
  (await listImages(join(values.data, "train", "good"))).slice(0, Number(values.calib)),
);
const evalPaths: string[] = [];
const labels: number[] = [];
for await (const e of Deno.readDir(join(values.data, "test"))) {
  if (!e.isDirectory) continue;
  const files = (await listImages(join(values.data, "test", e.name))).slice(
    0,
    Number(values["per-class"]),
  );
  evalPaths.push(...files);
  labels.push(...files.map(() => (e.name === "good" ? 0 : 1)));
}
const evalFrames = await load(evalPaths);

const fp32 = prepareGraph(buildEfficientAdGraph(model));
const t0 = performance.now();
const fp32Eval = await graphMaps(fp32, evalFrames, { intraOpThreads: threads });
const fp32Ms = (performance.now() - t0) / evalFrames.length;
// float32's quantiles: the model's, else calibrated on the calibration frames.
const fp32Q: Quantiles = quantilesOf(model.stateDict) ??
  calibrationFromMaps(await graphMaps(fp32, calibFrames, { intraOpThreads: threads }));

function combined(m: FrameMaps, q: Quantiles): Float32Array {
  const st = m.st.data;
  const ae = m.ae.data;
  const out = new Float32Array(st.length);
  for (let i = 0; i < st.length; i++) {
    out[i] = 0.05 * (st[i]! - q.qaSt) / (q.qbSt - q.qaSt) +
      0.05 * (ae[i]! - q.qaAe) / (q.qbAe - q.qaAe);
  }
  return out;
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! - ma, y = b[i]! - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Kendall's tau-a: the share of image pairs both graphs order alike, minus the others. */
function kendall(a: readonly number[], b: readonly number[]): number {
  let s = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = i + 1; j < a.length; j++) {
      s += Math.sign(a[i]! - a[j]!) * Math.sign(b[i]! - b[j]!);
      n++;
    }
  }
  return s / n;
}

const fp32Maps = fp32Eval.map((m) => combined(m, fp32Q));
let lo = Infinity, hi = -Infinity;
for (const m of fp32Maps) for (const v of m) (lo = Math.min(lo, v), hi = Math.max(hi, v));
const fp32Scores = fp32Maps.map((m) => m.reduce((a, b) => Math.max(a, b), -Infinity));

const s0 = performance.now();
const tensors = quantizableTensors(fp32);
const stats = await collectStats(fp32, tensors, calibFrames, {
  method: "entropy",
  intraOpThreads: threads,
});
const statsSeconds = (performance.now() - s0) / 1000;

const methods: { method: CalibrationMethod; percentile?: number }[] = [
  { method: "minmax" },
  { method: "percentile", percentile: 99.9 },
  { method: "percentile", percentile: 99.99 },
  { method: "percentile", percentile: 99.999 },
  { method: "entropy" },
];
const rows: string[] = [];
for (const m of methods) {
  const ranges = new Map([...stats].map(([t, s]) => [t, rangeOf(s, m)]));
  const qdq = quantizeGraph(fp32, ranges);
  const cal = calibrationFromMaps(await graphMaps(qdq, calibFrames, { intraOpThreads: threads }));
  const int8 = withQuantiles(qdq, cal);
  const e0 = performance.now();
  const int8Eval = await graphMaps(int8, evalFrames, { intraOpThreads: threads });
  const int8Ms = (performance.now() - e0) / evalFrames.length;
  const maps = int8Eval.map((x) => combined(x, fp32Q));
  const corr = maps.map((x, i) => pearson(x, fp32Maps[i]!));
  let worst = 0;
  maps.forEach((x, i) => {
    const f = fp32Maps[i]!;
    for (let p = 0; p < x.length; p++) worst = Math.max(worst, Math.abs(x[p]! - f[p]!));
  });
  const scores = maps.map((x) => x.reduce((a, b) => Math.max(a, b), -Infinity));
  const own = int8Eval.map((x) => x.score);
  const name = m.method === "percentile" ? `percentile ${m.percentile}` : m.method;
  rows.push(
    `| ${name} | ${Math.min(...corr).toFixed(5)} | ${
      (corr.reduce((a, b) => a + b, 0) / corr.length).toFixed(5)
    } | ${(worst / (hi - lo) * 100).toFixed(2)} % | ${pearson(scores, fp32Scores).toFixed(5)} | ${
      kendall(scores, fp32Scores).toFixed(3)
    } | ${(auroc(own, labels) * 100).toFixed(2)} | ${
      (auroc(fp32Scores, labels) * 100).toFixed(2)
    } | ${int8Ms.toFixed(0)} / ${fp32Ms.toFixed(0)} |`,
  );
  console.error(`${name} done`);
}

console.log(
  `\n${values.model}: ${calibFrames.length} calibration frames (train/good), ${evalFrames.length} ` +
    `held-out test frames (${
      labels.filter((l) => l === 1).length
    } defective), ${threads} threads; ` +
    `statistics (min/max + histograms, ${tensors.length} tensors) took ${
      statsSeconds.toFixed(1)
    } s\n`,
);
console.log(
  "| method | map corr min | map corr mean | worst abs diff / fp32 map range | score corr | " +
    "score Kendall tau | " +
    "image AUROC int8 | image AUROC fp32 | ms/image int8 / fp32 |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
