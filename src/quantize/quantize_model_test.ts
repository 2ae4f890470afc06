import { join } from "node:path";
import { assertAlmostEquals, assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { HAS_SHARED, ROOT, SHARED_S } from "../../tests/parity.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { loadArtifact } from "../model/artifact.ts";
import { calibrationFromMaps } from "../model/calibration.ts";
import { resolveConfig } from "../model/config.ts";
import type { EfficientAdModel } from "../model/model.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { quantilesOf } from "../model/state_dict.ts";
import { loadImageTensor } from "../train/data.ts";
import { listImages } from "../image/list.ts";
import { type FrameMaps, graphMaps } from "./graph_maps.ts";
import { graphQuantiles } from "./graph_quantiles.ts";
import { quantizeModel } from "./quantize_model.ts";

const THREADS = 2;
const model = syntheticModel(resolveConfig({ teacherOutChannels: 16 }));

/** A smooth colour gradient with a little texture, different per seed. */
function frame(seed: number): Tensor {
  const n = 256 * 256;
  const data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 256; y++) {
      for (let x = 0; x < 256; x++) {
        const v = 0.5 + 0.3 * Math.sin((x + 17 * seed) / (20 + 5 * c)) *
            Math.cos((y - 11 * seed) / 31) +
          0.05 * Math.sin(x * y * 0.01 + seed);
        data[c * n + y * 256 + x] = Math.min(1, Math.max(0, v));
      }
    }
  }
  return tensor([1, 3, 256, 256], data);
}

function pearson(a: Float32Array, b: Float32Array): number {
  let ma = 0, mb = 0;
  for (let i = 0; i < a.length; i++) (ma += a[i]!, mb += b[i]!);
  ma /= a.length;
  mb /= a.length;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! - ma, y = b[i]! - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** The worst correlation and worst |diff| / fp32 range of the raw maps, st and ae. */
function compare(int8: FrameMaps[], fp32: FrameMaps[]): { corr: number; worst: number } {
  let corr = 1, worst = 0;
  for (const key of ["st", "ae"] as const) {
    let lo = Infinity, hi = -Infinity;
    for (const m of fp32) for (const v of m[key].data) (lo = Math.min(lo, v), hi = Math.max(hi, v));
    int8.forEach((m, i) => {
      const f = fp32[i]![key].data;
      corr = Math.min(corr, pearson(m[key].data, f));
      for (let p = 0; p < f.length; p++) {
        worst = Math.max(worst, Math.abs(m[key].data[p]! - f[p]!) / (hi - lo));
      }
    });
  }
  return { corr, worst };
}

const calib = [0, 1, 2, 3].map(frame);
const heldOut = [7, 9].map(frame);
const build = await quantizeModel(model, calib, { intraOpThreads: THREADS });

Deno.test("quantizeModel() maps stay close to the float32 graph's on held-out frames", async () => {
  const fp32 = await graphMaps(buildEfficientAdGraph(model), heldOut, { intraOpThreads: THREADS });
  const int8 = await graphMaps(build.graph, heldOut, { intraOpThreads: THREADS });
  const { corr, worst } = compare(int8, fp32);
  // Measured on this model: correlation 0.99977, worst error 2.5 % of the range.
  assertOk(corr > 0.999, `correlation ${corr}`);
  assertOk(worst < 0.05, `worst error ${worst} of the range`);
});

Deno.test("quantizeModel() recomputes quantiles and thresholds from the int8 maps", async () => {
  const own = calibrationFromMaps(await graphMaps(build.graph, calib, { intraOpThreads: THREADS }));
  assertEquals(build.quantiles, { qaSt: own.qaSt, qbSt: own.qbSt, qaAe: own.qaAe, qbAe: own.qbAe });
  assertEquals(build.thresholds, own.thresholds);
  const fp32 = calibrationFromMaps(
    await graphMaps(buildEfficientAdGraph(model), calib, { intraOpThreads: THREADS }),
  );
  assertOk(fp32.thresholds.threshold !== own.thresholds.threshold);
  assertOk(fp32.qbSt !== own.qbSt);
  // The graph normalises with them although the float32 model had no quantiles.
  const inGraph = graphQuantiles(build.graph)!;
  assertAlmostEquals(inGraph.qaSt, own.qaSt, 1e-6 * Math.abs(own.qaSt));
  assertAlmostEquals(inGraph.qbAe, own.qbAe, 1e-5 * Math.abs(own.qbAe));
});

Deno.test("quantizeModel() records its calibration", () => {
  assertEquals(build.calibration.method, "minmax");
  assertEquals(build.calibration.frames, 4);
  assertEquals(build.calibration.percentile, undefined);
  assertOk(build.calibration.seconds > 0);
  assertEquals(new Date(build.calibration.createdAt).toISOString(), build.calibration.createdAt);
});

Deno.test("quantizeModel() throws a RangeError for no frames, a wrong size or percentile", async () => {
  await assertRejects(() => quantizeModel(model, []), RangeError, "no frames");
  await assertRejects(
    () => quantizeModel(model, [tensor([1, 3, 128, 128])]),
    RangeError,
    "frame 0 is [1, 3, 128, 128], expected [1, 3, 256, 256]",
  );
  await assertRejects(
    () => quantizeModel(model, calib, { method: "percentile", percentile: 20 }),
    RangeError,
    "percentile 20",
  );
});

const BOTTLE = join(ROOT, "..", "shared", "datasets", "mvtec_ad_256", "bottle");

Deno.test({
  name: "quantizeModel() on anomalib's S model: maps correlate with float32's",
  ignore: !HAS_SHARED,
  async fn() {
    const artifact = await loadArtifact(`${SHARED_S}model.pth`);
    assertEquals(artifact.kind, "efficientad");
    const real = (artifact as { model: EfficientAdModel }).model;
    const files = await listImages(join(BOTTLE, "train", "good"));
    const frames = await Promise.all(files.slice(0, 4).map((f) => loadImageTensor(f, [256, 256])));
    const test = await Promise.all(
      [join(BOTTLE, "test", "broken_large", "000.png"), join(BOTTLE, "test", "good", "000.png")]
        .map((f) => loadImageTensor(f, [256, 256])),
    );
    const b = await quantizeModel(real, frames, { intraOpThreads: THREADS });
    const fp32 = await graphMaps(buildEfficientAdGraph(real), test, { intraOpThreads: THREADS });
    const int8 = await graphMaps(b.graph, test, { intraOpThreads: THREADS });
    const { corr, worst } = compare(int8, fp32);
    // Measured: correlation 0.999986, worst error 1.0 % of the range (with 8-bit weights
    // on a CPU without VNNI: 0.898, the first layers' sums saturate).
    assertOk(corr > 0.9995, `correlation ${corr}`);
    assertOk(worst < 0.03, `worst error ${worst} of the range`);
    // The model's own quantiles are replaced by the int8 graph's.
    const inGraph = graphQuantiles(b.graph)!;
    assertAlmostEquals(inGraph.qbSt, b.quantiles.qbSt, 1e-5 * Math.abs(b.quantiles.qbSt));
    assertOk(quantilesOf(real.stateDict)!.qbSt !== b.quantiles.qbSt);
  },
});
