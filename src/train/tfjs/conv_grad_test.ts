import * as tf from "@tensorflow/tfjs-core";
import { assertEquals } from "../../../tests/assert.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import { uniformStream } from "../../model/synthetic.ts";
import { conv2dWithGrad } from "./conv_grad.ts";
import { ensureGradients } from "./gradients.ts";
import { maxRelativeDiff as maxRel } from "../_test_utils.ts";

function random(n: number, key: string): Float32Array {
  const next = uniformStream(key, 3);
  return Float32Array.from({ length: n }, () => 2 * next() - 1);
}

const CASES = [
  { k: 4, stride: 1, pad: 0, h: 11, ci: 3, co: 5 },
  { k: 4, stride: 1, pad: 3, h: 9, ci: 4, co: 6 },
  { k: 3, stride: 1, pad: 1, h: 8, ci: 5, co: 3 },
  { k: 1, stride: 1, pad: 0, h: 6, ci: 3, co: 2 },
  { k: 4, stride: 2, pad: 1, h: 10, ci: 3, co: 4 },
  { k: 4, stride: 2, pad: 1, h: 9, ci: 2, co: 3 },
  { k: 8, stride: 1, pad: 0, h: 8, ci: 4, co: 4 },
];

type Grads = { value: Float32Array; dx: Float32Array; dw: Float32Array };

function gradsOf(c: (typeof CASES)[number], custom: boolean): Grads {
  return tf.tidy(() => {
    const x = tf.tensor4d(random(2 * c.h * c.h * c.ci, `x${c.k}${c.h}`), [2, c.h, c.h, c.ci]);
    const w = tf.tensor4d(random(c.k * c.k * c.ci * c.co, `w${c.k}${c.h}`), [c.k, c.k, c.ci, c.co]);
    const opts = { stride: c.stride, pad: c.pad };
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) =>
      custom
        ? conv2dWithGrad(a, b, opts)
        : tf.conv2d(a, b, c.stride, c.pad === 0 ? "valid" : c.pad);
    const y = f(x, w);
    const r = tf.tensor4d(random(y.size, `r${c.k}${c.h}`), y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D), r))
    )([x, w]);
    return {
      value: y.dataSync() as Float32Array,
      dx: dx!.dataSync() as Float32Array,
      dw: dw!.dataSync() as Float32Array,
    };
  }) as unknown as Grads;
}

Deno.test("conv2dWithGrad() on wasm matches the cpu backend's own convolution gradients", async () => {
  try {
    await selectTfjsBackend();
    await ensureGradients();
    await selectTfjsBackend({ candidates: ["cpu"] });
    const expected = CASES.map((c) => gradsOf(c, false));
    await selectTfjsBackend({ candidates: ["wasm"] });
    CASES.forEach((c, i) => {
      const got = gradsOf(c, true);
      const e = expected[i]!;
      assertEquals(got.dx.length, e.dx.length);
      assertEquals(got.dw.length, e.dw.length);
      for (const key of ["value", "dx", "dw"] as const) {
        const rel = maxRel(got[key], e[key]);
        assertEquals(rel < 1e-5, true, `${JSON.stringify(c)} ${key}: ${rel}`);
      }
    });
  } finally {
    await selectTfjsBackend();
  }
});
