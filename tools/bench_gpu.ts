/**
 * GPU inference benchmark (issue 10): EfficientAD S and M at 256x256, batch 1 / 8 / 32, on
 * the WebGPU engine (`createOnnxEngine` with `executionProviders: ["webgpu", "cpu"]`), with
 * the CPU provider and, where `python3` has PyTorch on CUDA, the PyTorch reference on CUDA
 * (`tools/bench_torch.py`, fp32 and fp16 autocast) in the same run. Prints one markdown table.
 *
 * ```sh
 * deno task bench:gpu [--sizes s,m] [--batches 1,8,32] [--runs 20] [--warmup 3]
 *   [--cpu-runs 3] [--cpu-batches 1,8,32] [--engines webgpu,cpu,torch] [--budget-s S]
 *   [--teacher-out-channels 384] [--quick]
 * ```
 *
 * Permissions: `-P=gpu` (read the tree, FFI for onnxruntime-node, run `nvidia-smi` and
 * `python3`). Deno starts a program named in `--allow-run=...` only without `LD_LIBRARY_PATH`
 * in the environment; where it is set (NVIDIA's lib64, a carried Vulkan loader) add
 * `--allow-run`, as `tools/gpu_check.sh` does, or the torch and memory columns read n/a.
 *
 * `--quick` is for a software adapter (llvmpipe): S only, batch 1, teacher_out_channels 64,
 * one run, no warm-up beyond the first result. `--budget-s` bounds the whole run: rows not
 * started in time are listed as skipped, and the table is still printed.
 *
 * Columns: ms per batch is the median of `--runs` timed `engine.run` calls after `--warmup`
 * untimed ones (the first result counts as one; fewer runs, at least 3, where they would take
 * over 15 s), from a Float32 batch in host memory to the maps in host memory; frames/s is
 * batch / that time; the first result is session creation
 * plus the first run at the first batch size; GPU memory is `nvidia-smi`'s `memory.used`
 * after the runs minus its value before the engine was made (torch: its own
 * `max_memory_reserved`), "n/a" where there is no `nvidia-smi`. "vs CPU" and "vs torch" are
 * the other row's ms over this row's (above 1: this row is faster). fp16 reads "n/a" until
 * the engine serves `precision: "fp16"` (it is asked for it, and the column is filled only
 * when the engine's `precision` property says `"fp16"`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "../src/core/percentiles.ts";
import { errorMessage } from "../src/core/errors.ts";
import { resolveConfig } from "../src/model/config.ts";
import type { EfficientAdModel } from "../src/model/model.ts";
import { syntheticModel } from "../src/model/synthetic.ts";
import type { InferenceEngine } from "../src/infer/engine.ts";
import { createOnnxEngine } from "../src/infer/onnx/engine.ts";
import { cpuCount, type ExecutionProvider } from "../src/infer/onnx/session.ts";
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
    batches: { type: "string", default: "1,8,32" },
    runs: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    "cpu-runs": { type: "string", default: "3" },
    "cpu-batches": { type: "string" },
    engines: { type: "string", default: "webgpu,cpu,torch" },
    "teacher-out-channels": { type: "string", default: "384" },
    "budget-s": { type: "string" },
    quick: { type: "boolean", default: false },
  },
});

const quick = values.quick;
const sizes = (quick ? "s" : values.sizes).split(",") as ("s" | "m")[];
const batches = (quick ? "1" : values.batches).split(",").map(Number);
const cpuBatches = quick ? batches : (values["cpu-batches"]?.split(",").map(Number) ?? batches);
const runs = quick ? 1 : Number(values.runs);
const warmup = quick ? 1 : Math.max(1, Number(values.warmup));
const cpuRuns = quick ? 1 : Number(values["cpu-runs"]);
const channels = quick ? 64 : Number(values["teacher-out-channels"]);
const engines = new Set(values.engines.split(","));
for (const name of engines) {
  if (!["webgpu", "cuda", "tensorrt", "cpu", "torch"].includes(name)) {
    throw new RangeError(
      `Cannot run the benchmark: unknown engine "${name}" (webgpu, cuda, tensorrt, cpu, torch)`,
    );
  }
}
for (const [name, v] of [["runs", runs], ["cpu-runs", cpuRuns], ["channels", channels]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`Cannot run the benchmark: --${name} must be a positive integer`);
  }
}

/** One line of the table. */
interface Row {
  size: string;
  batch: number;
  engine: string;
  serving: string;
  fp32?: number;
  fp16?: number;
  firstMs?: number;
  memMiB?: number;
  note?: string;
}

const rows: Row[] = [];

/** `nvidia-smi`'s used memory of GPU 0 in MiB, or undefined where it cannot be read. */
async function gpuMemoryUsed(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const v = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined; // not installed, or no --allow-run for it
  }
}

/** The GPU's name and driver as `nvidia-smi` says them, or "n/a". */
async function gpuName(): Promise<string> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader", "--id=0"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "n/a";
  } catch {
    return "n/a";
  }
}

/** Seconds the timed runs of one row may take: fewer runs (at least 3) when they are slow. */
const ROW_SECONDS = 15;

/**
 * Median ms of up to `n` runs after `warm` untimed ones; when one run is slow, only as many
 * as fit in {@linkcode ROW_SECONDS} (at least 3, or `n` when smaller).
 */
async function time(fn: () => Promise<unknown>, n: number, warm: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < warm; i++) {
    const t0 = performance.now();
    await fn();
    last = performance.now() - t0;
  }
  const fit = last > 0 ? Math.max(3, Math.floor((ROW_SECONDS * 1000) / last)) : n;
  const ts: number[] = [];
  for (let i = 0; i < Math.min(n, fit); i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

if (values["budget-s"] !== undefined && !(Number(values["budget-s"]) > 0)) {
  throw new RangeError("Cannot run the benchmark: --budget-s must be a positive number of seconds");
}

/** The whole run's time budget (`--budget-s`): rows not started by then are listed as skipped. */
const deadline = values["budget-s"] === undefined
  ? Infinity
  : performance.now() + Number(values["budget-s"]) * 1000;

/** Milliseconds left of the budget. */
function left(): number {
  return deadline - performance.now();
}

interface EngineRun {
  label: string;
  providers: readonly ExecutionProvider[];
  fp16: boolean;
  batches: readonly number[];
  runs: number;
  warm: number;
}

/** Times one engine configuration over the batch sizes; returns a row per batch size. */
async function benchEngine(model: EfficientAdModel, run: EngineRun): Promise<Row[]> {
  const size = model.config.size.toUpperCase();
  const wanted = run.providers[0] ?? "cpu";
  const { logger, lastWarning } = warningLogger();
  const baseline = await gpuMemoryUsed();
  const options = engineOptions(run.providers, { fp16: run.fp16, logger });
  if (left() <= 0) {
    return run.fp16 ? [] : [{
      size,
      batch: run.batches[0]!,
      engine: run.label,
      serving: "-",
      note: "skipped: --budget-s spent",
    }];
  }
  const t0 = performance.now();
  let engine: InferenceEngine & { provider: string };
  try {
    engine = await createOnnxEngine(model, options);
  } catch (e) {
    return [{
      size,
      batch: run.batches[0]!,
      engine: run.label,
      serving: "-",
      note: errorMessage(e),
    }];
  }
  await using _ = engine;
  if (engine.provider !== wanted) {
    const why = lastWarning() ?? "no reason logged";
    return [{
      size,
      batch: run.batches[0]!,
      engine: run.label,
      serving: engine.description,
      note: `not timed: ${wanted} fell back to ${engine.provider} (${why})`,
    }];
  }
  if (run.fp16 && !servesFp16(engine)) return [];
  const out: Row[] = [];
  for (const [i, b] of run.batches.entries()) {
    if (left() <= 0) {
      out.push({
        size,
        batch: b,
        engine: run.label,
        serving: engine.description,
        note: "skipped: --budget-s spent",
      });
      continue;
    }
    const batch = syntheticBatch(b);
    let firstMs: number | undefined;
    if (i === 0) {
      await engine.run(batch);
      firstMs = performance.now() - t0;
    }
    const ms = await time(() => engine.run(batch), run.runs, i === 0 ? run.warm - 1 : run.warm);
    const used = await gpuMemoryUsed();
    const row: Row = { size, batch: b, engine: run.label, serving: engine.description };
    if (run.fp16) row.fp16 = ms;
    else row.fp32 = ms;
    if (firstMs !== undefined) row.firstMs = firstMs;
    if (used !== undefined && baseline !== undefined) row.memMiB = used - baseline;
    console.error(`${run.label}${run.fp16 ? " fp16" : ""} ${size} batch ${b}: ${ms.toFixed(2)} ms`);
    out.push(row);
  }
  return out;
}

/** Puts fp16 timings into the fp32 rows of the same size, batch and engine. */
function merge(into: Row[], fp16: Row[]): void {
  for (const r of fp16) {
    const same = into.find((x) =>
      x.size === r.size && x.batch === r.batch && x.engine === r.engine
    );
    if (same && r.fp16 !== undefined) same.fp16 = r.fp16;
    else into.push(r);
  }
}

/** The torch rows, or one row saying why there are none. */
async function benchTorch(): Promise<Row[]> {
  if (left() <= 0) {
    return [{
      size: "-",
      batch: 0,
      engine: "torch cuda",
      serving: "-",
      note: "skipped: --budget-s spent",
    }];
  }
  const script = new URL("./bench_torch.py", import.meta.url).pathname;
  const args = [
    script,
    ...["--sizes", sizes.join(","), "--batches", batches.join(",")],
    ...["--runs", String(runs), "--warmup", String(warmup)],
    ...["--teacher-out-channels", String(channels)],
  ];
  let stdout: string;
  try {
    const signal = Number.isFinite(left()) ? AbortSignal.timeout(Math.max(1, left())) : undefined;
    const out = await new Deno.Command("python3", {
      args,
      stdout: "piped",
      stderr: "inherit",
      ...(signal ? { signal } : {}),
    }).output();
    stdout = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      return [{
        size: "-",
        batch: 0,
        engine: "torch cuda",
        serving: "-",
        note: `n/a (bench_torch.py exited with ${out.code})`,
      }];
    }
  } catch (e) {
    return [{
      size: "-",
      batch: 0,
      engine: "torch cuda",
      serving: "-",
      note: `n/a (no python3: ${errorMessage(e)})`,
    }];
  }
  const rowsOut: Row[] = [];
  let device = "cuda";
  for (const line of stdout.split("\n").filter((l) => l.trim() !== "")) {
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (msg.kind === "unavailable") {
      return [{
        size: "-",
        batch: 0,
        engine: "torch cuda",
        serving: "-",
        note: `n/a (${String(msg.reason ?? "no CUDA torch")})`,
      }];
    }
    if (msg.kind === "device") device = `torch ${msg.torch}, ${msg.name}`;
    if (msg.kind !== "result") continue;
    const size = String(msg.size).toUpperCase();
    const batch = Number(msg.batch);
    let row = rowsOut.find((r) => r.size === size && r.batch === batch);
    if (!row) {
      row = { size, batch, engine: "torch cuda", serving: device };
      rowsOut.push(row);
    }
    const ms = Number(msg.ms);
    if (msg.precision === "fp16") row.fp16 = ms;
    else {
      row.fp32 = ms;
      if (typeof msg.first_ms === "number") row.firstMs = msg.first_ms;
      if (typeof msg.mem_mib === "number") row.memMiB = msg.mem_mib;
    }
  }
  return rowsOut;
}

// The reference first (it is the result's denominator), the CPU provider last (the slowest,
// so that a budget cut takes it first). The table is sorted by size and batch below.
if (engines.has("torch")) rows.push(...await benchTorch());
const models = new Map(
  sizes.map((
    size,
  ) => [size, syntheticModel(resolveConfig({ size, teacherOutChannels: channels }))]),
);
for (const model of models.values()) {
  for (const name of engines) {
    if (name === "cpu" || name === "torch") continue;
    const gpu: EngineRun = {
      label: name,
      providers: [name as ExecutionProvider, "cpu"],
      fp16: false,
      batches,
      runs,
      warm: warmup,
    };
    const fp32 = await benchEngine(model, gpu);
    const timed = fp32.some((r) => r.fp32 !== undefined);
    merge(fp32, timed ? await benchEngine(model, { ...gpu, fp16: true }) : []);
    rows.push(...fp32);
  }
}
if (engines.has("cpu")) {
  for (const model of models.values()) {
    rows.push(
      ...await benchEngine(model, {
        label: "cpu",
        providers: ["cpu"],
        fp16: false,
        batches: cpuBatches,
        runs: cpuRuns,
        warm: 1,
      }),
    );
  }
}
const engineOrder = (e: string) => e === "cpu" ? 2 : e === "torch cuda" ? 3 : 1;
const sizeOrder = (s: string) => s === "-" ? 9 : s.charCodeAt(0) === 83 ? 0 : 1; // S, M, "-"
rows.sort((a, b) =>
  sizeOrder(a.size) - sizeOrder(b.size) || a.batch - b.batch ||
  engineOrder(a.engine) - engineOrder(b.engine)
);

const f = (v: number | undefined, digits = 2) => v === undefined ? "n/a" : v.toFixed(digits);
const fps = (ms: number | undefined, b: number) => {
  if (ms === undefined) return "n/a";
  const v = b * 1000 / ms;
  return v.toFixed(v < 10 ? 2 : 0);
};
const ratio = (other: number | undefined, mine: number | undefined) =>
  other === undefined || mine === undefined ? "" : `${(other / mine).toFixed(2)}x`;
const ref = (engine: string, r: Row) =>
  rows.find((x) => x.engine === engine && x.size === r.size && x.batch === r.batch)?.fp32;

console.log(`\nadapter: ${await describeAdapter()}`);
console.log(`nvidia-smi: ${await gpuName()}`);
console.log(
  `EfficientAD 256x256, teacher_out_channels ${channels}, median of ${runs} runs after ${warmup} warm-up (cpu: ${cpuRuns} runs), ${cpuCount()} CPUs, ${
    new Date().toISOString().slice(0, 16)
  }Z\n`,
);
console.log(
  "| size | batch | engine | serving | fp32 ms/batch | fp32 frames/s | fp16 ms/batch | fp16 frames/s | first result ms | GPU MiB | vs CPU | vs torch fp32 | note |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.size} | ${r.batch || "-"} | ${r.engine} | ${cell(r.serving, 80)} | ${f(r.fp32)} | ${
      fps(r.fp32, r.batch)
    } | ${f(r.fp16)} | ${fps(r.fp16, r.batch)} | ${f(r.firstMs, 0)} | ${f(r.memMiB, 0)} | ${
      r.engine === "cpu" ? "" : ratio(ref("cpu", r), r.fp32)
    } | ${r.engine === "torch cuda" ? "" : ratio(ref("torch cuda", r), r.fp32)} | ${
      cell(r.note ?? "")
    } |`,
  );
}
