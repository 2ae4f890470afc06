import * as tf from "@tensorflow/tfjs-core";
import { assertAlmostEquals, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { conv } from "../../model/architecture.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import { disposeEfficientAdParams, efficientAdParams } from "../../infer/tfjs/networks.ts";
import { resolveConfig } from "../../model/config.ts";
import { syntheticStateDict } from "../../model/synthetic.ts";
import {
  accurateMean,
  accurateSum,
  decoderDropout,
  hardFeatureLoss,
  trainableModel,
} from "./losses.ts";

Deno.test("hardFeatureLoss() averages the values at or above the 0.999-quantile", async () => {
  await selectTfjsBackend();
  // 2000 values 0..1999: rank 0.999 * 1999 = 1997.001 -> threshold 1997.001; 1998 and 1999.
  const values = Float32Array.from({ length: 2000 }, (_, i) => i);
  const d = tf.tensor4d(values, [1, 10, 10, 20]);
  const loss = tf.tidy(() => hardFeatureLoss(d));
  assertAlmostEquals(loss.dataSync()[0]!, 1998.5, 1e-3);
  tf.dispose([d, loss]);
});

Deno.test("accurateMean() and accurateSum() keep float32 error small on a million values", async () => {
  await selectTfjsBackend();
  const n = 384 * 56 * 56;
  const v = new Float32Array(n);
  let s = 1;
  let exact = 0;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    v[i] = (s / 2147483647) ** 2 * 3;
    exact += v[i]!;
  }
  const t = tf.tensor4d(v, [1, 56, 56, 384]);
  const [mean, sum] = tf.tidy(() => [accurateMean(t), accurateSum(t)]);
  assertAlmostEquals(mean!.dataSync()[0]! / (exact / n), 1, 1e-5);
  assertAlmostEquals(sum!.dataSync()[0]! / exact, 1, 1e-5);
  tf.dispose([t, mean!, sum!]);
});

Deno.test("trainableModel() refuses a model without teacher statistics", async () => {
  await selectTfjsBackend();
  const config = resolveConfig({ size: "s", imageSize: [256, 256] });
  const params = efficientAdParams(config, syntheticStateDict(config, 1));
  try {
    const { meanStd: _, ...rest } = params;
    assertThrows(() => trainableModel(rest), RangeError, "mean_std");
  } finally {
    disposeEfficientAdParams(params);
  }
});

Deno.test("decoderDropout() drops decoder outputs with probability p and rescales", async () => {
  await selectTfjsBackend();
  const y = tf.ones([1, 50, 50, 64]) as tf.Tensor4D;
  const layer = (name: string) => conv(name, 64, 64, 4);
  const hook = decoderDropout(0.2, 7);
  const [kept, untouched, again] = tf.tidy(() => {
    const a = hook(y, layer("decoder.deconv3"));
    const b = hook(y, layer("decoder.deconv7"));
    const c = decoderDropout(0.2, 7)(y, layer("decoder.deconv1"));
    return [a, b, c];
  });
  const values = kept!.dataSync();
  let zeros = 0;
  for (const v of values) {
    if (v === 0) zeros++;
    else assertAlmostEquals(v, 1.25, 1e-6);
  }
  assertAlmostEquals(zeros / values.length, 0.2, 0.01);
  assertEquals([...untouched!.dataSync()].every((v) => v === 1), true);
  assertEquals([...again!.dataSync()], [...values]); // same seed, same mask
  tf.dispose([y, kept!, untouched!, again!]);
  assertThrows(() => decoderDropout(1, 0), RangeError, "probability 1");
});
