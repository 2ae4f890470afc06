/**
 * The worker of {@linkcode predictFiles}: reads and decodes the next inputs, and draws,
 * encodes and writes the outputs of scored batches, off the thread that runs the engine
 * (ONNX Runtime's `session.run` holds its thread until it returns).
 *
 * Messages are handled one at a time, in the order they came; each gets one reply with
 * its `id`. Not for use outside `predict.ts`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { join } from "node:path";
import { encodeNpy } from "../core/npy.ts";
import { encodePng, type RgbImage } from "../image/decode.ts";
import { heatmapImage } from "../image/heatmap.ts";
import {
  type PredictInput,
  readInput,
  tensorToRgb,
  type WorkerReply,
  type WorkerRequest,
} from "./predict.ts";

let paths: readonly string[] = [];
let size: readonly [number, number] = [0, 0];
let outDir = "";
let nextPath = 0;
/** Decoded images not yet handed out (the rest of a `.npy` batch). */
const queued: PredictInput[] = [];
/** Backgrounds of images handed out and not yet written, by input index. */
const backgrounds = new Map<number, RgbImage>();
let handedOut = 0;
/** The maps written so far, in input order, for `anomaly_map.npy`. */
const maps: Float32Array[] = [];
let mapShape: readonly number[] = [];

async function read(count: number): Promise<WorkerReply> {
  while (queued.length < count && nextPath < paths.length) {
    queued.push(...await readInput(paths[nextPath++]!, size));
  }
  const take = queued.splice(0, count);
  const [h, w] = size;
  const plane = 3 * h * w;
  const data = new Float32Array(take.length * plane);
  const names: string[] = [];
  take.forEach((input, k) => {
    data.set(input.image.data, k * plane);
    names.push(input.name);
    backgrounds.set(handedOut + k, tensorToRgb(input.image));
  });
  handedOut += take.length;
  return { type: "batch", id: 0, names, data };
}

async function write(
  first: number,
  heatmaps: readonly string[],
  data: Float32Array<ArrayBuffer>,
  shape: readonly number[],
): Promise<void> {
  const size = shape.reduce((a, b) => a * b, 1);
  mapShape = shape;
  for (let k = 0; k < heatmaps.length; k++) {
    const map = { shape, data: data.subarray(k * size, (k + 1) * size) };
    const background = backgrounds.get(first + k)!;
    backgrounds.delete(first + k);
    await Deno.writeFile(
      join(outDir, heatmaps[k]!),
      encodePng(heatmapImage(map, { background, alpha: 0.5 }), { filter: "sub" }),
    );
    maps[first + k] = map.data;
  }
}

async function finish(): Promise<void> {
  const size = mapShape.reduce((a, b) => a * b, 1);
  const all = new Float32Array(maps.length * size);
  maps.forEach((m, i) => all.set(m, i * size));
  await Deno.writeFile(
    join(outDir, "anomaly_map.npy"),
    encodeNpy({ shape: [maps.length, ...mapShape], data: all }),
  );
}

async function handle(msg: WorkerRequest): Promise<void> {
  try {
    switch (msg.type) {
      case "init":
        ({ paths, size, outDir } = msg);
        self.postMessage({ type: "done", id: msg.id } satisfies WorkerReply);
        break;
      case "read": {
        const reply = await read(msg.count);
        self.postMessage(
          { ...reply, id: msg.id },
          reply.type === "batch" ? [reply.data.buffer] : [],
        );
        break;
      }
      case "write":
        await write(msg.first, msg.heatmaps, msg.data, msg.shape);
        self.postMessage({ type: "done", id: msg.id } satisfies WorkerReply);
        break;
      case "finish":
        await finish();
        self.postMessage({ type: "done", id: msg.id } satisfies WorkerReply);
        break;
    }
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    self.postMessage(
      { type: "error", id: msg.id, name: error.name, message: error.message } satisfies WorkerReply,
    );
  }
}

let queue: Promise<void> = Promise.resolve();
self.onmessage = (e: MessageEvent<WorkerRequest>) => {
  queue = queue.then(() => handle(e.data));
};
