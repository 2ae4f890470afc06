/**
 * Bilinear resizing with PyTorch's `F.interpolate(mode="bilinear", align_corners=False,
 * antialias=False)` semantics, the resize anomalib uses for frames and anomaly maps.
 *
 * @module
 */
import { formatShape, type Tensor } from "../core/tensor.ts";
import { assertPositiveInteger } from "../core/check.ts";

/** Source indices and weights of one axis: output `i` = `w0[i] * in[i0[i]] + w1[i] * in[i1[i]]`. */
interface AxisTable {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly w0: Float32Array;
  readonly w1: Float32Array;
}

/**
 * Builds one axis's table as PyTorch's CPU kernel does, in float32: scale = in / out,
 * source = max(scale * (i + 0.5) - 0.5, 0), i0 = min(floor(source), in - 1),
 * i1 = min(i0 + 1, in - 1), w1 = source - i0, w0 = 1 - w1.
 */
function axisTable(inSize: number, outSize: number): AxisTable {
  const f = Math.fround;
  const scale = f(inSize / outSize);
  const table = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  for (let i = 0; i < outSize; i++) {
    const source = Math.max(f(f(scale * f(i + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(source), inSize - 1);
    const lambda = Math.min(Math.max(f(source - i0), 0), 1);
    table.i0[i] = i0;
    table.i1[i] = Math.min(i0 + 1, inSize - 1);
    table.w1[i] = lambda;
    table.w0[i] = f(1 - lambda);
  }
  return table;
}

/**
 * Resizes the last two axes (height, width) of a tensor with bilinear interpolation,
 * exactly as PyTorch's `F.interpolate(t, size, mode="bilinear", align_corners=False)`
 * without antialiasing: pixel centres at half-integers, source coordinates below 0
 * clamped to 0 and the upper neighbour clamped to the last row or column. Downscaling
 * therefore samples (it does not average), as in anomalib.
 *
 * Indices and weights match PyTorch's bit for bit; each value is then computed in float64
 * and rounded once, so results agree with PyTorch's float32 kernels to a few ulps
 * (PyTorch's own rounding varies with its code path, thread count and FMA use).
 *
 * Leading axes (N x C for an image batch) are resized plane by plane. Index and weight
 * tables are computed once per axis, so a call costs about four loads and six
 * multiply-adds per output value. A same-size resize returns a copy.
 *
 * @param t a tensor of rank 2 or more, normally N x C x H x W.
 * @param size the output height and width.
 * @returns a new tensor with the last two axes replaced by `size`.
 * @throws {RangeError} when `t` has fewer than two axes or an empty plane, or when a size
 * is not a positive integer.
 *
 * @example
 * ```ts
 * import { resizeBilinear } from "./resize.ts";
 * import { tensor } from "../core/tensor.ts";
 *
 * const small = tensor([2, 1, 64, 64]);
 * const map = resizeBilinear(small, [256, 256]); // 2 x 1 x 64 x 64 -> 2 x 1 x 256 x 256
 * ```
 */
export function resizeBilinear(t: Tensor, size: readonly [number, number]): Tensor {
  const [outH, outW] = size;
  assertPositiveInteger(outH, "height", `Cannot resize to ${outH}x${outW}`);
  assertPositiveInteger(outW, "width", `Cannot resize to ${outH}x${outW}`);
  const rank = t.shape.length;
  const inH = t.shape[rank - 2];
  const inW = t.shape[rank - 1];
  if (inH === undefined || inW === undefined || inH < 1 || inW < 1) {
    throw new RangeError(
      `Cannot resize a tensor of shape ${
        formatShape(t.shape)
      }: expected [..., H, W] with H, W >= 1`,
    );
  }
  const lead = t.shape.slice(0, rank - 2);
  const shape = [...lead, outH, outW];
  const inPlane = inH * inW;
  const planes = inPlane === 0 ? 0 : t.data.length / inPlane;
  if (inH === outH && inW === outW) return { shape, data: t.data.slice() };

  const ys = axisTable(inH, outH);
  const xs = axisTable(inW, outW);
  const out = new Float32Array(planes * outH * outW);
  const src = t.data;
  const { i0: x0, i1: x1, w0: wx0, w1: wx1 } = xs;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * inPlane;
    for (let y = 0; y < outH; y++) {
      const r0 = base + ys.i0[y]! * inW;
      const r1 = base + ys.i1[y]! * inW;
      const wy0 = ys.w0[y]!;
      const wy1 = ys.w1[y]!;
      for (let x = 0; x < outW; x++) {
        const a = x0[x]!;
        const b = x1[x]!;
        const u = wx0[x]!;
        const v = wx1[x]!;
        // Width first, then height: the order of PyTorch's kernel.
        out[o++] = (src[r0 + a]! * u + src[r0 + b]! * v) * wy0 +
          (src[r1 + a]! * u + src[r1 + b]! * v) * wy1;
      }
    }
  }
  return { shape, data: out };
}
