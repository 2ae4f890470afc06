import { join } from "node:path";
import { encodeNpy, readNpy } from "../core/npy.ts";
import type { Tensor } from "../core/tensor.ts";
import { InputError } from "../core/errors.ts";
import { encodePng, readImage } from "../image/decode.ts";
import type { InferenceEngine, InferenceOutput } from "../infer/engine.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { predict, predictFiles, readInputs } from "./predict.ts";

const SIZE: readonly [number, number] = [24, 32];

/** An engine whose map is a fixed function of the input: channel mean times (1 + x / w). */
function fakeEngine(): InferenceEngine & { runs: number[] } {
  const runs: number[] = [];
  return {
    runs,
    description: "fake",
    scoreKind: "raw",
    inputSize: SIZE,
    run(batch: Tensor): Promise<InferenceOutput> {
      const [n = 0, , h = 0, w = 0] = batch.shape;
      runs.push(n);
      const plane = h * w;
      const map = new Float32Array(n * plane);
      const score = new Float32Array(n);
      for (let k = 0; k < n; k++) {
        let max = -Infinity;
        for (let p = 0; p < plane; p++) {
          let s = 0;
          for (let c = 0; c < 3; c++) s += batch.data[(k * 3 + c) * plane + p]!;
          const v = (s / 3) * (1 + (p % w) / w);
          map[k * plane + p] = v;
          if (v > max) max = v;
        }
        score[k] = max;
      }
      return Promise.resolve({
        anomalyMap: { shape: [n, 1, h, w], data: map },
        predScore: { shape: [n, 1], data: score },
      });
    },
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

/** Writes PNGs (some at the engine's size, some to resize) and a 2-image `.npy`. */
async function writeInputs(dir: string): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < 6; i++) {
    const [h, w] = i % 2 === 0 ? SIZE : [40, 30];
    const data = new Uint8Array(h * w * 3);
    for (let j = 0; j < data.length; j++) data[j] = (j * 7 + i * 31) % 256;
    const path = join(dir, `img ${i}.png`);
    await Deno.writeFile(path, encodePng({ width: w, height: h, data }));
    paths.push(path);
    if (i === 2) {
      const t = new Float32Array(2 * 3 * 16 * 16).map((_, j) => (j % 97) / 96);
      const npy = join(dir, "batch.npy");
      await Deno.writeFile(npy, encodeNpy({ shape: [2, 3, 16, 16], data: t }));
      paths.push(npy);
    }
  }
  return paths;
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("predictFiles() writes what predict() writes, over several batches", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writeInputs(dir);
    const raw = (await predict(fakeEngine(), await readInputs(paths, SIZE), {
      outDir: join(dir, "raw"),
    })).map((r) => r.pred_score).sort((a, b) => a - b);
    // A threshold between the scores, so that both verdicts occur.
    const thresholds = { threshold: (raw[3]! + raw[4]!) / 2, min: raw[0]!, max: raw[7]! };
    const engine = fakeEngine();
    const piped = await predictFiles(engine, paths, {
      outDir: join(dir, "piped"),
      batchSize: 3,
      thresholds,
    });
    assertEquals(engine.runs, [3, 3, 2]); // 8 images: the .npy's two span a batch boundary
    const inputs = await readInputs(paths, SIZE);
    const plain = await predict(fakeEngine(), inputs, {
      outDir: join(dir, "plain"),
      batchSize: 3,
      thresholds,
    });
    assertEquals(piped, plain);
    assertEquals(piped.length, 8);
    assertEquals(piped[3]!.input, `${paths[3]}#0`);
    assertEquals(piped[4]!.input, `${paths[3]}#1`);
    assertOk(piped.some((r) => r.anomalous === true) && piped.some((r) => r.anomalous === false));
    const names = await files(join(dir, "piped"));
    assertEquals(names, await files(join(dir, "plain")));
    assertEquals(names.length, 8 + 2);
    for (const npy of ["anomaly_map.npy", "pred_score.npy"]) {
      assertEquals(
        await Deno.readFile(join(dir, "piped", npy)),
        await Deno.readFile(join(dir, "plain", npy)),
        npy,
      );
    }
    const maps = await readNpy(join(dir, "piped", "anomaly_map.npy"));
    assertEquals(maps.shape, [8, 1, ...SIZE]);
    for (const r of piped) {
      const a = await readImage(join(dir, "piped", r.heatmap));
      const b = await readImage(join(dir, "plain", r.heatmap));
      assertEquals([a.width, a.height], [SIZE[1], SIZE[0]]);
      assertEquals(a.data, b.data, r.heatmap);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predictFiles() names a bad input, as readInputs() does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writeInputs(dir);
    const bad = join(dir, "broken.png");
    await Deno.writeFile(bad, (await Deno.readFile(paths[0]!)).subarray(0, 60));
    const withBad = [...paths.slice(0, 5), bad, ...paths.slice(5)];
    let expected = "";
    try {
      await readInputs(withBad, SIZE);
    } catch (e) {
      expected = (e as Error).message;
    }
    assertOk(expected.includes(bad), expected);
    let caught: unknown;
    try {
      await predictFiles(fakeEngine(), withBad, { outDir: join(dir, "out"), batchSize: 2 });
    } catch (e) {
      caught = e;
    }
    assertOk(caught instanceof InputError, String(caught));
    assertEquals(caught.message, expected);
    let missing: unknown;
    try {
      await predictFiles(fakeEngine(), [join(dir, "nope.png")], { outDir: join(dir, "out2") });
    } catch (e) {
      missing = e;
    }
    assertOk(
      missing instanceof InputError && missing.message.includes("nope.png"),
      String(missing),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predictFiles() refuses no inputs", async () => {
  let caught: unknown;
  try {
    await predictFiles(fakeEngine(), [], { outDir: "/nonexistent/never-made" });
  } catch (e) {
    caught = e;
  }
  assertOk(caught instanceof InputError && caught.message === "Cannot predict: no inputs given");
});
