/**
 * Bilinear resizing (PyTorch's `align_corners=False`, no antialiasing) with a correct
 * gradient. tfjs 4.22's `ResizeBilinear` gradient passes only `alignCorners` to the
 * `ResizeBilinearGrad` kernel, so with half-pixel centres it differentiates a different
 * resize; the autoencoder's lower layers then get gradients about 1 % off PyTorch's.
 *
 * Resizing is linear and separable: y = A_h x A_w^T per image and channel, with A the
 * interpolation matrices of {@linkcode interpolationMatrix}; the input gradient is
 * A_h^T dy A_w. The forward pass stays tfjs's own kernel.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { resizeBilinear } from "../../infer/tfjs/networks.ts";

/**
 * The out x in matrix of PyTorch's 1-D linear interpolation with half-pixel centres
 * (`align_corners=False`), in its float32 arithmetic: source = max(0, (in / out)
 * (i + 0.5) - 0.5), weights 1 - frac and frac on floor(source) and the next index
 * (clamped to the edge).
 */
export function interpolationMatrix(inSize: number, outSize: number): Float32Array {
  const f = Math.fround;
  const m = new Float32Array(outSize * inSize);
  const scale = f(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, f(f(scale * f(o + 0.5)) - 0.5));
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = f(src - i0);
    m[o * inSize + i0]! += f(1 - l1);
    m[o * inSize + i1]! += l1;
  }
  return m;
}

/** The input gradient of a bilinear resize of an N x h x w x C tensor (see the module). */
export function resizeBilinearGrad(
  dy: tf.Tensor4D,
  inSize: readonly [number, number],
): tf.Tensor4D {
  const [n, oh, ow, c] = dy.shape;
  const [h, w] = inSize;
  return tf.tidy(() => {
    const ah = tf.tensor2d(interpolationMatrix(h, oh), [oh, h]);
    const aw = tf.tensor2d(interpolationMatrix(w, ow), [ow, w]);
    // Along H: (n, oh, ow*c) -> A_h^T: (h, oh) @ each batch item.
    const byH = tf.reshape(dy, [n, oh, ow * c]);
    const gH = tf.matMul(tf.tile(tf.expandDims(ah, 0), [n, 1, 1]), byH, true, false); // n, h, ow*c
    // Along W: (n*h, ow, c) -> (w, ow) @ each.
    const byW = tf.reshape(gH, [n * h, ow, c]);
    const gW = tf.matMul(tf.tile(tf.expandDims(aw, 0), [n * h, 1, 1]), byW, true, false);
    return tf.reshape(gW, [n, h, w, c]);
  });
}

/**
 * {@linkcode resizeBilinear} with the gradient of {@linkcode resizeBilinearGrad}: pass it as
 * `resize` in the tfjs networks' `ForwardOptions` when training.
 */
export function resizeBilinearWithGrad(
  x: tf.Tensor4D,
  size: readonly [number, number],
): tf.Tensor4D {
  const inSize: [number, number] = [x.shape[1], x.shape[2]];
  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    return {
      value: resizeBilinear(xi, size),
      gradFunc: (dy: tf.Tensor4D) => resizeBilinearGrad(dy, inSize),
    };
  });
  return fn(x);
}
