import * as tf from "@tensorflow/tfjs-core";
import { assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { selectTfjsBackend } from "../infer/tfjs/backend.ts";
import {
  computeMaps,
  disposeEfficientAdParams,
  efficientAdParams,
  forwardNetwork,
} from "../infer/tfjs/networks.ts";
import { readNpy } from "../core/npy.ts";
import { ChannelStats } from "./stats.ts";
import { quantile, quantiles, selectInPlace } from "../core/torch_quantile.ts";
import {
  FIXTURE_CONFIG,
  HAS_TRAIN_FIXTURE,
  imageToHwc,
  MODEL_DIR,
  readLossesJson,
  readModelDict,
  readTrainNpy,
} from "./_test_utils.ts";

/** torch.quantile's definition on a sorted copy (the reference). */
function sortedQuantile(values: Float32Array, q: number): number {
  const s = Float32Array.from(values).sort();
  const rank = Math.fround(Math.fround(q) * (s.length - 1));
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, s.length - 1);
  const w = Math.fround(rank - lo);
  const d = Math.fround(s[hi]! - s[lo]!);
  return w < 0.5
    ? Math.fround(s[lo]! + Math.fround(w * d))
    : Math.fround(s[hi]! - Math.fround(d * Math.fround(1 - w)));
}

Deno.test("quantile() interpolates linearly like torch.quantile", () => {
  assertEquals(quantile([1, 2, 3, 4], 0.5), 2.5);
  assertEquals(quantile([4, 1, 3, 2], 0), 1);
  assertEquals(quantile([4, 1, 3, 2], 1), 4);
  assertEquals(quantile([7], 0.3), 7);
  assertAlmostEquals(quantile([0, 10], 0.999), 9.99, 1e-5);
  assertThrows(() => quantile([], 0.5), RangeError, "no values");
  assertThrows(() => quantile([1], 1.5), RangeError, "outside");
});

Deno.test("quantiles() match a full sort on random data with ties", () => {
  let s = 12345;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (const n of [2, 3, 10, 1001, 100_000]) {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = Math.floor(next() * (n / 3)) / 7;
    const qs = [0.9, 0.995, 0.999, 0.5, 0.1, 0.9];
    const got = quantiles(v, qs);
    qs.forEach((q, i) => assertEquals(got[i], sortedQuantile(v, q), `n=${n} q=${q}`));
  }
});

Deno.test("selectInPlace() places the k-th smallest", () => {
  const a = Float32Array.of(5, 1, 4, 1, 5, 9, 2, 6);
  assertEquals(selectInPlace(a, 0), 1);
  assertEquals(selectInPlace(a, 7), 9);
  assertEquals(selectInPlace(a, 4), 5);
  assertThrows(() => selectInPlace(a, 8), RangeError, "element 8");
});

Deno.test("ChannelStats gives the mean and population std per channel", () => {
  const s = new ChannelStats(2);
  s.add([1, 10, 3, 10]);
  s.add([5, 10]);
  const { mean, std } = s.result();
  assertEquals(s.count, 3);
  assertEquals([...mean], [3, 10]);
  assertAlmostEquals(std[0]!, Math.sqrt(8 / 3), 1e-6);
  assertEquals(std[1], 0);
  assertThrows(() => s.add([1, 2, 3]), RangeError, "2 channels");
  assertThrows(() => new ChannelStats(1).result(), RangeError, "no values");
});

Deno.test({
  name: "teacher channel statistics and map quantiles match anomalib (efficientad-s-train)",
  ignore: !HAS_TRAIN_FIXTURE,
  async fn() {
    await selectTfjsBackend();
    const dict = await readModelDict();
    const params = efficientAdParams(FIXTURE_CONFIG, dict);
    const input = await readNpy(`${MODEL_DIR}input.npy`);
    const json = await readLossesJson();
    try {
      const stats = new ChannelStats(384);
      const st: Float32Array[] = [];
      const ae: Float32Array[] = [];
      for (let i = 0; i < input.shape[0]!; i++) {
        const x = tf.tensor4d(imageToHwc(input, i), [1, 256, 256, 3]);
        const t = tf.tidy(() => forwardNetwork(params.teacher, x));
        stats.add(t.dataSync());
        t.dispose();
        const maps = computeMaps(params, x);
        st.push(maps.mapSt.dataSync() as Float32Array);
        ae.push(maps.mapAe.dataSync() as Float32Array);
        for (const m of Object.values(maps)) (m as tf.Tensor).dispose();
        x.dispose();
      }
      const { mean, std } = stats.result();
      const eMean = await readTrainNpy("teacher_channel_mean.npy");
      const eStd = await readTrainNpy("teacher_channel_std.npy");
      let relMean = 0;
      let relStd = 0;
      const scale = Math.max(...eMean.data.map(Math.abs));
      for (let k = 0; k < 384; k++) {
        relMean = Math.max(relMean, Math.abs(mean[k]! - eMean.data[k]!) / scale);
        relStd = Math.max(relStd, Math.abs(std[k]! - eStd.data[k]!) / eStd.data[k]!);
      }
      const concat = (parts: Float32Array[]) => {
        const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) out.set(p, (o += p.length) - p.length);
        return out;
      };
      const [qaSt, qbSt] = quantiles(concat(st), [0.9, 0.995]);
      const [qaAe, qbAe] = quantiles(concat(ae), [0.9, 0.995]);
      const q = json.quantiles_over_input;
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
      const qRel = {
        qa_st: rel(qaSt!, q.qa_st),
        qb_st: rel(qbSt!, q.qb_st),
        qa_ae: rel(qaAe!, q.qa_ae),
        qb_ae: rel(qbAe!, q.qb_ae),
      };
      console.log(
        `mean max diff ${relMean.toExponential(2)} of max |mean|, std max rel ${
          relStd.toExponential(2)
        }, quantiles rel ${JSON.stringify(qRel)}`,
      );
      assertEquals(relMean <= 1e-4, true, `mean ${relMean}`);
      assertEquals(relStd <= 1e-4, true, `std ${relStd}`);
      for (const [k, v] of Object.entries(qRel)) assertEquals(v <= 1e-4, true, `${k} ${v}`);
    } finally {
      disposeEfficientAdParams(params);
    }
  },
});
