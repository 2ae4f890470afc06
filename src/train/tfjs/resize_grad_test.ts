import * as tf from "@tensorflow/tfjs-core";
import { assertEquals } from "../../../tests/assert.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import { resizeBilinear } from "../../infer/tfjs/networks.ts";
import { uniformStream } from "../../model/synthetic.ts";
import { ensureGradients } from "./gradients.ts";
import { maxRelativeDiff as maxRel } from "../_test_utils.ts";
import { interpolationMatrix, resizeBilinearWithGrad } from "./resize_grad.ts";

function random(n: number, key: string): Float32Array {
  const next = uniformStream(key, 5);
  return Float32Array.from({ length: n }, () => 2 * next() - 1);
}

/** y[o, :] = sum_i A[o, i] x[i, :] along one spatial axis of an N x H x W x C array. */
function applyJs(x: Float32Array, shape: number[], a: Float32Array, axis: 1 | 2, out: number) {
  const [n, h, w, c] = shape as [number, number, number, number];
  const inSize = axis === 1 ? h : w;
  const oshape = axis === 1 ? [n, out, w, c] : [n, h, out, c];
  const y = new Float64Array(oshape.reduce((p, d) => p * d, 1));
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oshape[1]!; i++) {
      for (let j = 0; j < oshape[2]!; j++) {
        for (let k = 0; k < c; k++) {
          let acc = 0;
          for (let s = 0; s < inSize; s++) {
            const wgt = a[(axis === 1 ? i : j) * inSize + s]!;
            if (wgt === 0) continue;
            const src = axis === 1 ? ((b * h + s) * w + j) * c + k : ((b * h + i) * w + s) * c + k;
            acc += wgt * x[src]!;
          }
          y[((b * oshape[1]! + i) * oshape[2]! + j) * c + k] = acc;
        }
      }
    }
  }
  return { y: Float32Array.from(y), shape: oshape };
}

/** Transposes an out x in matrix. */
function transpose(a: Float32Array, out: number, inSize: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inSize; i++) t[i * out + o] = a[o * inSize + i]!;
  }
  return t;
}

const SIZES: [number, number, number, number][] = [[1, 1, 3, 3], [3, 3, 8, 8], [7, 5, 15, 4], [
  56,
  56,
  64,
  64,
], [8, 9, 8, 9]];

Deno.test("interpolationMatrix() reproduces the forward resize", async () => {
  await selectTfjsBackend();
  for (const [h, w, oh, ow] of SIZES) {
    const shape = [2, h, w, 3];
    const x = random(2 * h * w * 3, `f${h}${w}`);
    const t = tf.tensor4d(x, [2, h, w, 3]);
    const r = resizeBilinear(t, [oh, ow]);
    const byH = applyJs(x, shape, interpolationMatrix(h, oh), 1, oh);
    const both = applyJs(byH.y, byH.shape, interpolationMatrix(w, ow), 2, ow);
    const rel = maxRel(both.y, r.dataSync());
    tf.dispose([t, r]);
    assertEquals(rel < 1e-6, true, `${h}x${w}->${oh}x${ow}: ${rel}`);
  }
});

Deno.test("resizeBilinearWithGrad() has the transposed interpolation as gradient", async () => {
  await selectTfjsBackend();
  await ensureGradients();
  for (const [h, w, oh, ow] of SIZES) {
    const x = tf.tensor4d(random(2 * h * w * 3, `g${h}${w}`), [2, h, w, 3]);
    const dyData = random(2 * oh * ow * 3, `dy${oh}${ow}`);
    const dy = tf.tensor4d(dyData, [2, oh, ow, 3]);
    const g = tf.grad((a: tf.Tensor) =>
      tf.sum(tf.mul(resizeBilinearWithGrad(a as tf.Tensor4D, [oh, ow]), dy))
    )(x);
    const t1 = applyJs(dyData, [2, oh, ow, 3], transpose(interpolationMatrix(h, oh), oh, h), 1, h);
    const t2 = applyJs(t1.y, t1.shape, transpose(interpolationMatrix(w, ow), ow, w), 2, w);
    const rel = maxRel(g.dataSync(), t2.y);
    tf.dispose([x, dy, g]);
    assertEquals(rel < 1e-6, true, `${h}x${w}->${oh}x${ow}: ${rel}`);
  }
});
