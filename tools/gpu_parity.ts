/**
 * WebGPU parity against the CPU provider (issue 10), for a GPU check: the same synthetic
 * EfficientAD model and batch through `createOnnxEngine` with `["webgpu", "cpu"]` and with
 * `["cpu"]`; prints the adapter, then one markdown table of max |diff| over the CPU map's
 * range for the combined map and the two raw maps, and the score's relative difference.
 *
 * ```sh
 * deno task gpu:parity [--sizes s,m] [--paddings false,true] [--batch 2]
 *   [--teacher-out-channels 384] [--tolerance 1e-4] [--providers webgpu,cpu] [--quick]
 * ```
 *
 * `--quick` (llvmpipe): S, padding off, batch 1, teacher_out_channels 64. Exit status: 0
 * when every fp32 row is within the tolerance, 1 when one is not, 2 when the WebGPU engine
 * fell back to the CPU (nothing compared). An fp16 row is added, for information, where the
 * engine serves `precision: "fp16"`. `--providers` sets the list the engine under test is
 * made with (`cpu` against itself checks this script; `cuda,cpu` an x64 CUDA build).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Tensor } from "../src/core/tensor.ts";
import { resolveConfig } from "../src/model/config.ts";
import { syntheticModel } from "../src/model/synthetic.ts";
import type { InferenceOutput } from "../src/infer/engine.ts";
import { createOnnxEngine } from "../src/infer/onnx/engine.ts";
import type { ExecutionProvider } from "../src/infer/onnx/session.ts";
import {
  cell,
  describeAdapter,
  engineOptions,
  servesFp16,
  syntheticBatch,
  warningLogger,
} from "./gpu_common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "s,m" },
    paddings: { type: "string", default: "false,true" },
    batch: { type: "string", default: "2" },
    "teacher-out-channels": { type: "string", default: "384" },
    tolerance: { type: "string", default: "1e-4" },
    providers: { type: "string", default: "webgpu,cpu" },
    quick: { type: "boolean", default: false },
  },
});
const quick = values.quick;
const sizes = (quick ? "s" : values.sizes).split(",") as ("s" | "m")[];
const paddings = (quick ? "false" : values.paddings).split(",").map((p) => p === "true");
const batchSize = quick ? 1 : Number(values.batch);
const channels = quick ? 64 : Number(values["teacher-out-channels"]);
const tolerance = Number(values.tolerance);
const providers = values.providers.split(",") as ExecutionProvider[];
const wanted = providers[0] ?? "webgpu";

/** max |a - b| over the range of `ref`, and that range. */
function relMaxDiff(got: Tensor, ref: Tensor): { diff: number; range: number; rel: number } {
  if (got.data.length !== ref.data.length) {
    throw new RangeError(
      `Cannot compare maps: ${got.data.length} values against ${ref.data.length}`,
    );
  }
  let diff = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.data.length; i++) {
    const r = ref.data[i]!;
    const d = Math.abs(got.data[i]! - r);
    if (!(d <= diff)) diff = d; // NaN counts as the largest difference
    if (r < lo) lo = r;
    if (r > hi) hi = r;
  }
  const range = hi - lo;
  return { diff, range, rel: range > 0 ? diff / range : diff };
}

interface Line {
  label: string;
  serving: string;
  cells: string[];
  worst: number;
  judged: boolean;
}

function compare(label: string, serving: string, got: InferenceOutput, ref: InferenceOutput): Line {
  const parts: [string, Tensor | undefined, Tensor | undefined][] = [
    ["anomaly_map", got.anomalyMap, ref.anomalyMap],
    ["map_st", got.mapSt, ref.mapSt],
    ["map_ae", got.mapAe, ref.mapAe],
  ];
  const cells: string[] = [];
  let worst = 0;
  for (const [, g, r] of parts) {
    if (!g || !r) {
      cells.push("n/a");
      continue;
    }
    const d = relMaxDiff(g, r);
    worst = Math.max(worst, Number.isNaN(d.rel) ? Infinity : d.rel);
    cells.push(
      `${d.diff.toExponential(2)} / ${d.range.toExponential(2)} = ${d.rel.toExponential(2)}`,
    );
  }
  const s = relMaxDiff(got.predScore, ref.predScore);
  const scoreScale = Math.max(...Array.from(ref.predScore.data, Math.abs));
  cells.push((s.diff / (scoreScale || 1)).toExponential(2));
  return { label, serving, cells, worst, judged: true };
}

console.log(`adapter: ${await describeAdapter()}`);
// Header first and each row as it is measured, so that a run cut by a timeout keeps its rows.
console.log(
  `\n${wanted} against the CPU provider, teacher_out_channels ${channels}: max |diff| / CPU map range\n`,
);
console.log(
  "| model | serving | anomaly_map | map_st | map_ae | pred_score rel | within " +
    `${tolerance} |`,
);
console.log("|---|---|---|---|---|---|---|");
let failed = false;
let fellBack = false;

function print(l: Line): void {
  const ok = !l.judged ? "-" : l.worst <= tolerance ? "yes" : "NO";
  if (l.judged && !(l.worst <= tolerance)) failed = true;
  const cells = l.cells.length === 1 ? [cell(l.cells[0]!), "", "", ""] : l.cells;
  console.log(`| ${l.label} | ${cell(l.serving, 80)} | ${cells.join(" | ")} | ${ok} |`);
}

for (const size of sizes) {
  for (const padding of paddings) {
    const model = syntheticModel(resolveConfig({ size, teacherOutChannels: channels, padding }));
    const batch = syntheticBatch(batchSize);
    const label = `${size.toUpperCase()} padding ${padding ? "on" : "off"}, batch ${batchSize}`;
    let ref: InferenceOutput;
    {
      await using cpu = await createOnnxEngine(model, engineOptions(["cpu"]));
      ref = await cpu.run(batch);
    }
    for (const fp16 of [false, true]) {
      const { logger, lastWarning } = warningLogger();
      await using gpu = await createOnnxEngine(
        model,
        engineOptions(providers, { fp16, logger }),
      );
      if (gpu.provider !== wanted) {
        fellBack = true;
        print({
          label,
          serving: gpu.description,
          cells: [`not compared: fell back (${lastWarning() ?? "no reason logged"})`],
          worst: 0,
          judged: false,
        });
        break;
      }
      if (fp16 && !servesFp16(gpu)) break;
      const t0 = performance.now();
      const got = await gpu.run(batch);
      console.error(
        `${label}${fp16 ? " fp16" : ""}: first run ${(performance.now() - t0).toFixed(0)} ms`,
      );
      const line = compare(fp16 ? `${label}, fp16` : label, gpu.description, got, ref);
      line.judged = !fp16;
      print(line);
    }
  }
}
if (failed) Deno.exit(1);
if (fellBack) {
  console.error(`${wanted} was not used: the engine fell back to the CPU (see the table)`);
  Deno.exit(2);
}
