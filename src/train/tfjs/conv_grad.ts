/**
 * A 2-D convolution whose gradients are computed from forward convolutions only, for
 * backends that lack `Conv2DBackpropFilter` (tfjs's wasm backend in 4.22; see
 * `../shared/MEASUREMENTS.md`).
 *
 * With x (N x H x W x Ci, zero-padded by p to xp), weight w (kh x kw x Ci x Co) and the
 * output gradient dy (N x oh x ow x Co):
 * - filter gradient: dw[a, b, i, o] = sum over n, y, x of xp[n, s y + a, s x + b, i]
 *   dy[n, y, x, o]: a convolution of xp with its batch and channel axes swapped
 *   (Ci x Hp x Wp x N) by dy as filter (oh x ow x N x Co, dilated by the stride s), then
 *   swapped back;
 * - input gradient, stride 1: a VALID convolution of dy padded by k - 1 - p with the
 *   flipped, in/out-swapped kernel (faster on wasm than its `Conv2DBackpropInput`); other
 *   strides use `tf.conv2dTranspose`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Conv2dFn } from "../../infer/tfjs/networks.ts";

/** The filter gradient of a convolution (see the module documentation). */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  kernel: readonly [number, number],
  options: { readonly stride: number; readonly pad: number },
): tf.Tensor4D {
  const { stride, pad } = options;
  return tf.tidy(() => {
    const xp = pad > 0 ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x;
    const xs = tf.transpose(xp, [3, 1, 2, 0]); // Ci x Hp x Wp x N
    const f = tf.transpose(dy, [1, 2, 0, 3]); // oh x ow x N x Co
    let g = tf.conv2d(xs, f, 1, "valid", "NHWC", stride); // Ci x kh' x kw' x Co
    if (g.shape[1] !== kernel[0] || g.shape[2] !== kernel[1]) {
      g = tf.slice(g, [0, 0, 0, 0], [-1, kernel[0], kernel[1], -1]);
    }
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

/** The input gradient of a convolution (see the module documentation). */
export function conv2dInputGrad(
  dy: tf.Tensor4D,
  weight: tf.Tensor4D,
  xShape: readonly [number, number, number, number],
  options: { readonly stride: number; readonly pad: number },
): tf.Tensor4D {
  const { stride, pad } = options;
  const [kh, kw] = weight.shape;
  return tf.tidy(() => {
    if (stride === 1 && pad <= kh - 1 && pad <= kw - 1) {
      const ph = kh - 1 - pad;
      const pw = kw - 1 - pad;
      const dyp = ph > 0 || pw > 0 ? tf.pad(dy, [[0, 0], [ph, ph], [pw, pw], [0, 0]]) : dy;
      const wf = tf.transpose(tf.reverse(weight, [0, 1]), [0, 1, 3, 2]);
      let dx = tf.conv2d(dyp, wf, 1, "valid");
      if (dx.shape[1] !== xShape[1] || dx.shape[2] !== xShape[2]) {
        // Rows or columns the forward convolution never read get zero gradient.
        dx = tf.pad(dx, [[0, 0], [0, xShape[1] - dx.shape[1]], [0, xShape[2] - dx.shape[2]], [
          0,
          0,
        ]]);
      }
      return dx;
    }
    return tf.conv2dTranspose(dy, weight, [...xShape], stride, pad);
  });
}

/**
 * A {@linkcode Conv2dFn} (no bias) differentiable on every backend: forward by
 * `tf.conv2d`, gradients by {@linkcode conv2dInputGrad} and {@linkcode conv2dFilterGrad}.
 * Pass it as `conv2d` in the `ForwardOptions` of the tfjs networks when training.
 */
export const conv2dWithGrad: Conv2dFn = (
  x: tf.Tensor4D,
  weight: tf.Tensor4D,
  options: { readonly stride: number; readonly pad: number },
): tf.Tensor4D => {
  const { stride, pad } = options;
  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const wi = args[1] as tf.Tensor4D;
    const save = args[2] as tf.GradSaveFunc;
    save([xi, wi]);
    const value = tf.conv2d(xi, wi, stride, pad === 0 ? "valid" : pad);
    const gradFunc = (dy: tf.Tensor4D, saved: tf.Tensor[]): tf.Tensor[] => {
      const sx = saved[0] as tf.Tensor4D;
      const sw = saved[1] as tf.Tensor4D;
      return [
        conv2dInputGrad(dy, sw, sx.shape, options),
        conv2dFilterGrad(sx, dy, [sw.shape[0], sw.shape[1]], options),
      ];
    };
    return { value, gradFunc };
  });
  return fn(x, weight);
};
