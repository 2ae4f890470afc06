/**
 * Inference benchmark: per-image latency of EfficientAD S and M at 256x256, batch 1 and 8,
 * for both engines, printed as a table with the thread count used.
 *
 * `deno task bench [--engines onnx,tfjs] [--sizes s,m] [--batches 1,8] [--runs N]`
 *
 * For the ONNX engine it also times ONNX Runtime's bare `session.run` on the same graph
 * and input (no tensor copies, no output mapping), so the engine's own overhead shows.
 *
 * With `--precisions fp32,int8` (the default) it also builds each size's int8 graph with
 * `quantizeModel` (4 calibration frames) and times its bare `session.run` beside the
 * float32 graph's, printing the int8 / fp32 frames-per-second ratio and how long the
 * calibration took.
 *
 * @module
 */
import { median } from "../src/core/percentiles.ts";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { resolveConfig } from "../src/model/config.ts";
import type { EfficientAdModel } from "../src/model/model.ts";
import { syntheticModel } from "../src/model/synthetic.ts";
import { createEngine, type EngineType } from "../src/infer/create.ts";
import { buildEfficientAdGraph, graphOutputs } from "../src/infer/onnx/efficientad_graph.ts";
import { cpuCount, createSession, type RuntimeSession } from "../src/infer/onnx/session.ts";
import type { Tensor } from "../src/core/tensor.ts";
import { quantizeModel } from "../src/quantize/quantize_model.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    engines: { type: "string", default: "onnx,tfjs" },
    sizes: { type: "string", default: "s,m" },
    batches: { type: "string", default: "1,8" },
    runs: { type: "string", default: "5" },
    threads: { type: "string" },
    precisions: { type: "string", default: "fp32,int8" },
  },
});

const threads = values.threads ? Number(values.threads) : cpuCount();
const runs = Number(values.runs);

function model(size: "s" | "m"): EfficientAdModel {
  return syntheticModel(resolveConfig({ size }));
}

function batchOf(n: number): Tensor {
  const data = new Float32Array(n * 3 * 256 * 256);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
  return { shape: [n, 3, 256, 256], data };
}

async function time(fn: () => Promise<unknown>, n: number): Promise<number> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

interface Row {
  engine: string;
  size: string;
  batch: number;
  threads: string;
  perImage: number;
  bare?: number;
}

interface Int8Row {
  size: string;
  batch: number;
  fp32: number;
  int8: number;
}

const rows: Row[] = [];
const int8Rows: Int8Row[] = [];
const calibrations: string[] = [];
const withInt8 = values.precisions.split(",").includes("int8");
for (const engineType of values.engines.split(",") as EngineType[]) {
  for (const size of values.sizes.split(",") as ("s" | "m")[]) {
    const m = model(size);
    await using engine = await createEngine({ kind: "efficientad", path: "bench", model: m }, {
      type: engineType,
      intraOpThreads: threads,
    });
    let bareSession: RuntimeSession | undefined;
    if (engineType === "onnx") {
      bareSession = (await createSession(buildEfficientAdGraph(m), { intraOpThreads: threads }))
        .session;
    }
    for (const b of values.batches.split(",").map(Number)) {
      const batch = batchOf(b);
      const n = engineType === "tfjs"
        ? Math.max(1, Math.min(runs, size === "m" || b > 1 ? 1 : 3))
        : runs;
      const ms = await time(() => engine.run(batch), n);
      const row: Row = {
        engine: engine.description.split(" ")[0]!,
        size: size.toUpperCase(),
        batch: b,
        threads: engineType === "onnx" ? String(threads) : engine.description,
        perImage: ms / b,
      };
      if (bareSession) {
        const input = new ort.Tensor("float32", batch.data, [...batch.shape]);
        const bare = await time(() => bareSession!.run({ input }, graphOutputs()), n);
        row.bare = bare / b;
      }
      rows.push(row);
      console.error(`${row.engine} ${row.size} batch ${b}: ${row.perImage.toFixed(1)} ms/image`);
    }
    if (bareSession && withInt8) {
      const frames = [0, 1, 2, 3].map((k) => {
        const f = batchOf(1);
        return { shape: f.shape, data: f.data.map((v, i) => (v + k * 0.13 * Math.sin(i)) % 1) };
      });
      const build = await quantizeModel(m, frames, { intraOpThreads: threads });
      calibrations.push(
        `${size.toUpperCase()}: ${build.calibration.seconds.toFixed(1)} s on ` +
          `${build.calibration.frames} frames (${build.calibration.method})`,
      );
      const int8 = (await createSession(build.graph, { intraOpThreads: threads })).session;
      for (const b of values.batches.split(",").map(Number)) {
        const batch = batchOf(b);
        const input = new ort.Tensor("float32", batch.data, [...batch.shape]);
        const fp32Ms = await time(() => bareSession!.run({ input }, graphOutputs()), runs);
        const int8Ms = await time(() => int8.run({ input }, graphOutputs()), runs);
        int8Rows.push({ size: size.toUpperCase(), batch: b, fp32: fp32Ms / b, int8: int8Ms / b });
        console.error(
          `int8 ${size.toUpperCase()} batch ${b}: ${(int8Ms / b).toFixed(1)} ms/image ` +
            `(fp32 ${(fp32Ms / b).toFixed(1)})`,
        );
      }
      await int8.release();
    }
    await bareSession?.release();
  }
}

const header =
  "| engine | size | batch | threads / backend | ms per image | bare session.run ms/image | engine overhead |";
console.log(`\nEfficientAD 256x256, median of ${runs} runs (tfjs: fewer), ${cpuCount()} CPUs\n`);
console.log(header);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  const overhead = r.bare !== undefined
    ? `${(((r.perImage / r.bare) - 1) * 100).toFixed(1)} %`
    : "";
  console.log(
    `| ${r.engine} | ${r.size} | ${r.batch} | ${r.threads} | ${r.perImage.toFixed(1)} | ${
      r.bare?.toFixed(1) ?? ""
    } | ${overhead} |`,
  );
}

if (int8Rows.length > 0) {
  console.log(
    `\nint8 against fp32, bare session.run, ${threads} threads, graph optimisation "all" ` +
      `for both (median of ${runs} runs each, interleaved per batch size)\n`,
  );
  console.log("| size | batch | fp32 ms per image | int8 ms per image | int8 / fp32 frames/s |");
  console.log("|---|---|---|---|---|");
  for (const r of int8Rows) {
    console.log(
      `| ${r.size} | ${r.batch} | ${r.fp32.toFixed(1)} | ${r.int8.toFixed(1)} | ${
        (r.fp32 / r.int8).toFixed(2)
      } |`,
    );
  }
  console.log(`\nint8 calibration (quantizeModel, ${threads} threads): ${calibrations.join("; ")}`);
}
