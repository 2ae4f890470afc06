/**
 * `predict`: runs a model on image files (PNG, JPEG) or `.npy` batches and writes
 * `anomaly_map.npy`, `pred_score.npy`, `summary.json` and one heatmap PNG per input.
 *
 * @module
 */
import { basename, extname, join } from "node:path";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { readNpy, writeNpy } from "../core/npy.ts";
import { item, stack, type Tensor } from "../core/tensor.ts";
import { heatmapPng } from "../image/heatmap.ts";
import { imageToTensor, readImage, type RgbImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import type { Thresholds } from "../model/model.ts";
import { normalizeScore } from "../model/thresholds.ts";

/** One image to score, already at the engine's input size. */
export interface PredictInput {
  /** The file it came from, with `#k` for the k-th image of a `.npy` batch. */
  readonly name: string;
  /** 3 x H x W in [0, 1]. */
  readonly image: Tensor;
}

/** One line of `summary.json`. */
export interface PredictResult {
  readonly input: string;
  /** The engine's score: raw (the map's maximum) or anomalib-normalised; see `score_kind`. */
  readonly pred_score: number;
  readonly score_kind: "raw" | "normalized";
  /** anomalib-normalised score in [0, 1] (0.5 = threshold), when thresholds are known. */
  readonly normalized_score?: number;
  /** Whether the input is anomalous, when thresholds are known. */
  readonly anomalous?: boolean;
  readonly heatmap: string;
}

/**
 * Reads one input file: an image is decoded and resized (bilinear, no antialiasing, as
 * anomalib's export does); a `.npy` file is N x 3 x H x W (or 3 x H x W) float32 in [0, 1].
 *
 * @returns its images, named `path` (an image) or `path#k` (the k-th of a `.npy` batch).
 * @throws {InputError} naming the file when it cannot be read or has the wrong shape.
 */
export async function readInput(
  path: string,
  size: readonly [number, number],
): Promise<PredictInput[]> {
  if (extname(path).toLowerCase() === ".npy") {
    let t = await readNpy(path);
    if (t.shape.length === 3) t = { shape: [1, ...t.shape], data: t.data };
    if (t.shape.length !== 4 || t.shape[1] !== 3) {
      throw new InputError(
        `Cannot use ${path}: expected N x 3 x H x W float32 in [0, 1], got shape [${
          t.shape.join(", ")
        }]`,
      );
    }
    if (t.shape[2] !== size[0] || t.shape[3] !== size[1]) {
      t = resizeBilinear(t, [size[0], size[1]]);
    }
    const out: PredictInput[] = [];
    for (let i = 0; i < t.shape[0]!; i++) out.push({ name: `${path}#${i}`, image: item(t, i) });
    return out;
  }
  const img = await readImage(path);
  let t = imageToTensor(img);
  if (img.height !== size[0] || img.width !== size[1]) {
    t = resizeBilinear(t, [size[0], size[1]]);
  }
  return [{ name: path, image: item(t, 0) }];
}

/**
 * Reads inputs, all of them, with {@linkcode readInput}.
 *
 * @throws {InputError} naming a file that cannot be read or has the wrong shape.
 */
export async function readInputs(
  paths: readonly string[],
  size: readonly [number, number],
): Promise<PredictInput[]> {
  const out: PredictInput[] = [];
  for (const path of paths) out.push(...await readInput(path, size));
  return out;
}

/** Converts a 3 x H x W tensor in [0, 1] to 8-bit RGB for heatmap backgrounds. */
export function tensorToRgb(t: Tensor): RgbImage {
  const [, h = 0, w = 0] = t.shape;
  const data = new Uint8ClampedArray(h * w * 3); // clamps to [0, 255], NaN to 0
  const plane = h * w;
  const src = t.data;
  for (let c = 0; c < 3; c++) {
    for (let p = 0, i = c, j = c * plane; p < plane; p++, i += 3, j++) {
      data[i] = Math.round(src[j]! * 255);
    }
  }
  return { width: w, height: h, data: new Uint8Array(data.buffer) };
}

/** Options of {@linkcode predict}. */
export interface PredictOptions {
  readonly outDir: string;
  /** Images per engine run. Default 8. */
  readonly batchSize?: number;
  readonly thresholds?: Thresholds;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/** A request to the worker of {@linkcode predictFiles} (`predict_worker.ts`). */
export type WorkerRequest =
  | {
    readonly type: "init";
    readonly id: number;
    readonly paths: readonly string[];
    readonly size: readonly [number, number];
    readonly outDir: string;
  }
  | { readonly type: "read"; readonly id: number; readonly count: number }
  | {
    readonly type: "write";
    readonly id: number;
    /** Input index of the first map. */
    readonly first: number;
    /** File names of the heatmaps, one per map. */
    readonly heatmaps: readonly string[];
    /** The maps, each of `shape`, back to back. */
    readonly data: Float32Array<ArrayBuffer>;
    readonly shape: readonly number[];
  }
  | { readonly type: "finish"; readonly id: number };

/** A reply of the worker of {@linkcode predictFiles}. */
export type WorkerReply =
  | { readonly type: "done"; readonly id: number }
  | {
    readonly type: "batch";
    readonly id: number;
    /** Input names, one per image (none: the inputs are exhausted). */
    readonly names: readonly string[];
    /** The images, N x 3 x H x W, back to back. */
    readonly data: Float32Array<ArrayBuffer>;
  }
  | {
    readonly type: "error";
    readonly id: number;
    readonly name: string;
    readonly message: string;
  };

/** The other end of `predict_worker.ts`: one promise per request, in order. */
class PredictWorker implements AsyncDisposable {
  #worker = new Worker(new URL("./predict_worker.ts", import.meta.url), { type: "module" });
  #pending = new Map<number, (reply: WorkerReply) => void>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor() {
    this.#worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      this.#pending.get(e.data.id)?.(e.data);
      this.#pending.delete(e.data.id);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#failure = new Error(`Cannot predict: the output worker failed (${e.message})`);
      for (const resolve of this.#pending.values()) {
        resolve({ type: "error", id: -1, name: "Error", message: this.#failure.message });
      }
      this.#pending.clear();
    };
  }

  /** Sends a request; resolves with its reply, rejects with the error it reports. */
  request<T extends WorkerRequest["type"]>(
    type: T,
    body: Omit<Extract<WorkerRequest, { type: T }>, "id" | "type">,
    transfer: Transferable[] = [],
  ): Promise<WorkerReply> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const reply = new Promise<WorkerReply>((resolve, reject) => {
      this.#pending.set(id, (r) => r.type === "error" ? reject(rebuildError(r)) : resolve(r));
    });
    this.#worker.postMessage({ ...body, type, id }, transfer);
    reply.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection
    return reply;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#worker.terminate();
    return Promise.resolve();
  }
}

/** The worker's error as the class the caller would have seen (InputError, RangeError...). */
function rebuildError(r: { name: string; message: string }): Error {
  const e = r.name === "InputError"
    ? new InputError(r.message)
    : r.name === "RangeError"
    ? new RangeError(r.message)
    : r.name === "TypeError"
    ? new TypeError(r.message)
    : new Error(r.message);
  if (e.name !== r.name) e.name = r.name;
  return e;
}

/** The file name of input `i`'s heatmap. */
function heatmapName(name: string, i: number): string {
  return `${String(i).padStart(3, "0")}_${
    basename(name).replace(/[^A-Za-z0-9._-]/g, "_")
  }_heatmap.png`;
}

/** The summary line of one input. */
function resultOf(
  engine: InferenceEngine,
  input: string,
  i: number,
  raw: number,
  label: boolean | undefined,
  thresholds: Thresholds | undefined,
): PredictResult {
  const normalized = engine.scoreKind === "raw" && thresholds
    ? normalizeScore(raw, thresholds)
    : undefined;
  const anomalous = label ?? (normalized !== undefined ? normalized > 0.5 : undefined);
  return {
    input,
    pred_score: raw,
    score_kind: engine.scoreKind,
    ...(normalized !== undefined ? { normalized_score: normalized } : {}),
    ...(anomalous !== undefined ? { anomalous } : {}),
    heatmap: heatmapName(input, i),
  };
}

/** Batches whose outputs may wait for the worker while the engine runs the next one. */
const MAX_PENDING_WRITES = 2;

/**
 * Reads image or `.npy` files, scores them and writes `anomaly_map.npy`, `pred_score.npy`
 * and one heatmap PNG per input into `outDir`: the outputs of {@linkcode predict}, file
 * for file and value for value, but pipelined. A worker decodes the next batch while the
 * engine runs this one, and draws, encodes and writes the heatmaps of the batches scored
 * (at most two batches wait for it), so the engine does not wait for files. Memory: the
 * batch scored, the next one and the pending outputs, plus every map (for
 * `anomaly_map.npy`).
 *
 * A bad input stops the run when its batch is due: the outputs of the batches before it
 * may already be written.
 *
 * @returns the per-input results, as in `summary.json`.
 * @throws {InputError} naming a file that cannot be read or has the wrong shape, or when
 * there are no inputs.
 */
export async function predictFiles(
  engine: InferenceEngine,
  paths: readonly string[],
  options: PredictOptions,
): Promise<PredictResult[]> {
  if (paths.length === 0) throw new InputError("Cannot predict: no inputs given");
  await Deno.mkdir(options.outDir, { recursive: true });
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const [h, w] = engine.inputSize;
  await using worker = new PredictWorker();
  await worker.request("init", { paths, size: [h, w], outDir: options.outDir });
  const scores: number[] = [];
  const results: PredictResult[] = [];
  const writes: Promise<WorkerReply>[] = [];
  let next = worker.request("read", { count: batchSize });
  for (;;) {
    const batch = await next;
    if (batch.type !== "batch" || batch.names.length === 0) break;
    next = worker.request("read", { count: batchSize }); // decoded while the engine runs
    while (writes.length >= MAX_PENDING_WRITES) await writes.shift();
    const n = batch.names.length;
    const t0 = performance.now();
    const out = await engine.run({ shape: [n, 3, h, w], data: batch.data }, {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    options.logger?.info("batch scored", { images: n, ms: Math.round(performance.now() - t0) });
    const first = scores.length;
    batch.names.forEach((name, k) => {
      const raw = out.predScore.data[k]!;
      scores.push(raw);
      const label = out.predLabel ? out.predLabel[k] === 1 : undefined;
      results.push(resultOf(engine, name, first + k, raw, label, options.thresholds));
    });
    const data = out.anomalyMap.data.slice(); // its own buffer, to hand over
    writes.push(worker.request("write", {
      first,
      heatmaps: batch.names.map((name, k) => heatmapName(name, first + k)),
      data,
      shape: out.anomalyMap.shape.slice(1),
    }, [data.buffer]));
  }
  if (scores.length === 0) throw new InputError("Cannot predict: no inputs given");
  for (const write of writes) await write;
  await worker.request("finish", {});
  await writeNpy(join(options.outDir, "pred_score.npy"), {
    shape: [scores.length, 1],
    data: Float32Array.from(scores),
  });
  return results;
}

/**
 * Scores inputs already in memory with an engine and writes the results into `outDir`,
 * one step after the other: the engine, then every heatmap, then the `.npy` files. The
 * files are those of {@linkcode predictFiles}, which overlaps these steps.
 *
 * @returns the per-input results, as in `summary.json`.
 */
export async function predict(
  engine: InferenceEngine,
  inputs: readonly PredictInput[],
  options: PredictOptions,
): Promise<PredictResult[]> {
  if (inputs.length === 0) throw new InputError("Cannot predict: no inputs given");
  await Deno.mkdir(options.outDir, { recursive: true });
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const maps: Tensor[] = [];
  const scores: number[] = [];
  const labels: (boolean | undefined)[] = [];
  for (let i = 0; i < inputs.length; i += batchSize) {
    const chunk = inputs.slice(i, i + batchSize);
    const t0 = performance.now();
    const out = await engine.run(stack(chunk.map((c) => c.image)), {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    options.logger?.info("batch scored", {
      images: chunk.length,
      ms: Math.round(performance.now() - t0),
    });
    for (let k = 0; k < chunk.length; k++) {
      maps.push(item(out.anomalyMap, k));
      scores.push(out.predScore.data[k]!);
      labels.push(out.predLabel ? out.predLabel[k] === 1 : undefined);
    }
  }
  const results: PredictResult[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    const result = resultOf(engine, input.name, i, scores[i]!, labels[i], options.thresholds);
    await Deno.writeFile(
      join(options.outDir, result.heatmap),
      heatmapPng(maps[i]!, { background: tensorToRgb(input.image), alpha: 0.5 }),
    );
    results.push(result);
  }
  await writeNpy(join(options.outDir, "anomaly_map.npy"), stack(maps));
  await writeNpy(join(options.outDir, "pred_score.npy"), {
    shape: [scores.length, 1],
    data: Float32Array.from(scores),
  });
  return results;
}
