/**
 * The int8 graph's cost in quality on MVTec bottle, measured: trains the model of
 * `train:bottle` (250 steps, random teacher, seed 0, calibration on test/good) with
 * `--int8` when the model folder is empty, calibrates the int8 graph with `quantize` when
 * the model has none (or `--method` asks for another), evaluates fp32 and int8 with `eval`,
 * and prints both side by side against the issue's bounds (image AUROC at most 0.5 points
 * lower, AU-PRO at most 1 point lower).
 *
 * `deno task quality:int8 [--model out/bottle-250] [--data <category>] [--method m]
 * [--percentile p] [--frames n]` (opt-in: about 10 minutes to train on 2 cores, then
 * 2 x about 1.5 minutes to evaluate).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { createLogger } from "../src/core/log.ts";
import { runCli } from "../src/cli/commands.ts";
import { isProjectModelDir, readProjectModel } from "../src/model/project_format.ts";
import type { EvalSummary } from "../src/cli/eval.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "out/bottle-250" },
    data: { type: "string", default: "../shared/datasets/mvtec_ad_256/bottle" },
    penalty: { type: "string", default: "../shared/datasets/imagenette_sample" },
    method: { type: "string" },
    percentile: { type: "string" },
    frames: { type: "string" },
  },
});
const log = createLogger();
const model = values.model;
const data = values.data;

async function cli(args: string[]): Promise<void> {
  const code = await runCli(args, log);
  if (code !== 0) throw new Error(`Cannot measure: \`${args.join(" ")}\` exited with ${code}`);
}

if (!(await isProjectModelDir(model))) {
  log.info("training the bottle model (as train:bottle, with --int8)", { out: model });
  await cli([
    "train",
    "--data",
    data,
    "--out",
    model,
    "--steps",
    "250",
    "--penalty-images",
    values.penalty,
    "--seed",
    "0",
    "--calibration",
    "test-good",
    "--int8",
  ]);
}
if ((await readProjectModel(model)).int8 === undefined || values.method !== undefined) {
  await cli([
    "quantize",
    "--model",
    model,
    "--data",
    join(data, "test", "good"),
    ...(values.method !== undefined ? ["--method", values.method] : []),
    ...(values.percentile !== undefined ? ["--percentile", values.percentile] : []),
    ...(values.frames !== undefined ? ["--frames", values.frames] : []),
  ]);
}
const int8 = (await readProjectModel(model)).int8!;

const summaries: Record<string, EvalSummary> = {};
for (const precision of ["fp32", "int8"] as const) {
  const json = join(model, `eval-${precision}.json`);
  await cli(["eval", "--model", model, "--data", data, "--precision", precision, "--json", json]);
  summaries[precision] = JSON.parse(await Deno.readTextFile(json)) as EvalSummary;
}
const fp32 = summaries.fp32!;
const q = summaries.int8!;
if (q.model_precision !== "int8") throw new Error("Cannot measure: the int8 graph did not serve");

const rows: [string, number, number, number | undefined][] = [
  ["image AUROC", fp32.image_auroc, q.image_auroc, 0.5],
  ["pixel AUROC", fp32.pixel_auroc, q.pixel_auroc, undefined],
  ["AU-PRO (30 % FPR)", fp32.aupro, q.aupro, 1],
  ["F1-max", fp32.f1_max, q.f1_max, undefined],
];
const c = int8.calibration;
console.log(
  `\nMVTec bottle, ${model} (${fp32.counts.images} test images); ` +
    `int8 calibrated by ${c.method}${c.percentile ? ` ${c.percentile}` : ""} on ${c.frames} ` +
    `frames in ${c.seconds.toFixed(1)} s\n`,
);
console.log("| metric | fp32 | int8 | change (points) | allowed loss | within |");
console.log("|---|---|---|---|---|---|");
for (const [name, a, b, bound] of rows) {
  const change = (b - a) * 100;
  const ok = bound === undefined ? "" : change >= -bound ? "yes" : "NO";
  console.log(
    `| ${name} | ${a.toFixed(4)} | ${b.toFixed(4)} | ${change >= 0 ? "+" : ""}${
      change.toFixed(2)
    } | ${bound ?? ""} | ${ok} |`,
  );
}
console.log(
  `| ms per image (eval, batch 8) | ${fp32.timing.ms_per_image} | ${q.timing.ms_per_image} | ` +
    `${(fp32.timing.ms_per_image / q.timing.ms_per_image).toFixed(2)}x faster | | |`,
);
