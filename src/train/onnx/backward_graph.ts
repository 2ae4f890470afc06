/**
 * The backward half of the training graph ({@linkcode buildTrainStepGraph}'s module doc
 * derives each rule): a network's forward pass recorded on a tape, and the walk back along
 * it that adds each layer's gradient nodes (ReLU and dropout masks, conv bias, weight and
 * input, average pool, bilinear resize) to a {@linkcode GraphBuilder}.
 *
 * @module
 */
import { tensor } from "../../core/tensor.ts";
import { type ConvLayer, type Layer, outputSize } from "../../model/architecture.ts";
import type { GraphBuilder } from "../../infer/onnx/graph_builder.ts";

/**
 * One recorded forward step: the layer, its network's state-dict prefix, the value it read,
 * the value it produced (after the ReLU) and the dropout mask applied after that, if any.
 */
export interface TapeEntry {
  readonly prefix: string;
  readonly layer: Layer;
  readonly input: string;
  readonly inSize: readonly [number, number];
  readonly output: string;
  readonly dropout?: string;
}

/** A network's forward pass with every intermediate value recorded for the backward. */
export function forward(
  g: GraphBuilder,
  prefix: string,
  layers: readonly Layer[],
  input: string,
  size: readonly [number, number],
  dropout: ReadonlyMap<string, string> = new Map(),
): { output: string; tape: TapeEntry[] } {
  const tape: TapeEntry[] = [];
  let v = input;
  let s: [number, number] = [size[0], size[1]];
  for (const l of layers) {
    const before = v;
    let mask: string | undefined;
    if (l.op === "conv") {
      const p = l.pad;
      v = g.node("Conv", [v, `${prefix}.${l.name}.weight`, `${prefix}.${l.name}.bias`], {
        kernel_shape: [l.kernel, l.kernel],
        strides: [l.stride, l.stride],
        pads: [p, p, p, p],
      });
      if (l.relu) v = g.node("Relu", [v]);
      mask = dropout.get(l.name);
    } else if (l.op === "avgpool") {
      const p = l.pad;
      v = g.node("AveragePool", [v], {
        kernel_shape: [2, 2],
        strides: [2, 2],
        pads: [p, p, p, p],
        count_include_pad: 1,
      });
    } else {
      v = g.node("Resize", [v, "", "", g.ints(g.fresh("sizes"), [l.size[0], l.size[1]])], {
        mode: "linear",
        coordinate_transformation_mode: "pytorch_half_pixel",
        axes: [2, 3],
      });
    }
    tape.push({
      prefix,
      layer: l,
      input: before,
      inSize: s,
      output: v,
      ...(mask ? { dropout: mask } : {}),
    });
    if (mask) v = g.node("Mul", [v, mask]);
    s = outputSize(l, s);
  }
  return { output: v, tape };
}

/** Walks the tape backwards from the output gradient; returns parameter gradients by name. */
export function backward(
  g: GraphBuilder,
  tape: readonly TapeEntry[],
  gradOut: string,
): Map<string, string> {
  const grads = new Map<string, string>();
  const scalarZero = g.floats(g.fresh("zero"), tensor([], Float32Array.of(0)));
  let gy = gradOut;
  for (let i = tape.length - 1; i >= 0; i--) {
    const e = tape[i];
    if (e === undefined) continue;
    const l = e.layer;
    const needInput = i > 0;
    if (l.op === "conv") {
      if (e.dropout) gy = g.node("Mul", [gy, e.dropout]);
      if (l.relu) {
        const on = g.node("Greater", [e.output, scalarZero]);
        gy = g.node("Mul", [gy, g.node("Cast", [on], { to: 1 })]);
      }
      const prefix = `${e.prefix}.${l.name}`;
      grads.set(
        `${prefix}.bias`,
        g.node("ReduceSum", [gy, g.ints(g.fresh("axes"), [0, 2, 3])], { keepdims: 0 }),
      );
      grads.set(`${prefix}.weight`, convWeightGrad(g, l, e.input, e.inSize, gy));
      if (needInput) gy = convInputGrad(g, l, `${prefix}.weight`, e.inSize, gy);
    } else if (l.op === "avgpool" && needInput) {
      gy = avgPoolInputGrad(g, l.pad, e.inSize, outputSize(l, e.inSize), gy);
    } else if (l.op === "resize" && needInput) {
      gy = resizeInputGrad(g, e.inSize, l.size, gy);
    }
  }
  return grads;
}

/** dW of a convolution: im2col as K*K (strided) slices of the padded input, then one Gemm. */
function convWeightGrad(
  g: GraphBuilder,
  l: ConvLayer,
  input: string,
  inSize: readonly [number, number],
  gy: string,
): string {
  const k = l.kernel;
  const p = l.pad;
  const st = l.stride;
  const [oh, ow] = outputSize(l, inSize);
  const padded = p > 0
    ? g.node("Pad", [input, g.ints(g.fresh("pads"), [0, 0, p, p, 0, 0, p, p])], {
      mode: "constant",
    })
    : input;
  const axes = g.ints(g.fresh("axes_hw"), [2, 3]);
  const steps = g.ints(g.fresh("steps"), [st, st]);
  const sliceShape = g.ints(g.fresh("slice_shape"), [l.inChannels, 1, oh * ow]);
  const slices: string[] = [];
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      const s = g.node("Slice", [
        padded,
        g.ints(g.fresh("starts"), [a, b]),
        g.ints(g.fresh("ends"), [a + st * (oh - 1) + 1, b + st * (ow - 1) + 1]),
        axes,
        steps,
      ]);
      slices.push(g.node("Reshape", [s, sliceShape]));
    }
  }
  const patches = k === 1 ? slices[0] ?? "" : g.node("Concat", slices, { axis: 1 });
  const cols = g.node("Reshape", [
    patches,
    g.ints(g.fresh("cols"), [l.inChannels * k * k, oh * ow]),
  ]);
  const dy = g.node("Reshape", [gy, g.ints(g.fresh("dy"), [l.outChannels, oh * ow])]);
  const dw = chunkedGemm(g, dy, cols, oh * ow);
  return g.node("Reshape", [dw, g.ints(g.fresh("w_shape"), [l.outChannels, l.inChannels, k, k])]);
}

/**
 * The reduction length of one Gemm in {@linkcode convWeightGrad} at most: longer ones are
 * split and summed. onnxruntime-web 1.30's WebGPU Gemm is wrong (about 30 % of the range)
 * for an inner dimension of 65535, 65537 or 67081 (the first student convolution at
 * 256x256 with padding), right for 65532, 65536 and below.
 */
export const MAX_GEMM_REDUCTION = 1 << 15;

/** `a x b^T` over an inner dimension of length `n`, in parts of {@linkcode MAX_GEMM_REDUCTION}. */
function chunkedGemm(g: GraphBuilder, a: string, b: string, n: number): string {
  if (n <= MAX_GEMM_REDUCTION) return g.node("Gemm", [a, b], { transB: 1 });
  const axis = g.ints(g.fresh("axis_k"), [1]);
  const parts: string[] = [];
  for (let start = 0; start < n; start += MAX_GEMM_REDUCTION) {
    const starts = g.ints(g.fresh("k_start"), [start]);
    const ends = g.ints(g.fresh("k_end"), [Math.min(n, start + MAX_GEMM_REDUCTION)]);
    parts.push(g.node("Gemm", [
      g.node("Slice", [a, starts, ends, axis]),
      g.node("Slice", [b, starts, ends, axis]),
    ], { transB: 1 }));
  }
  // A chain of Add rather than Sum: onnxruntime-web's WebGPU provider has no Sum kernel
  // (it would run on the CPU, with copies both ways).
  return parts.reduce((sum, part) => g.node("Add", [sum, part]));
}

/**
 * dX of a convolution. Stride 1: dy padded by k - 1 - p, convolved with the flipped,
 * in/out-swapped kernel (a plain convolution, which ONNX Runtime runs fastest). Other
 * strides: ConvTranspose with the same weight, strides and pads, its output padding chosen
 * to give back the input size.
 */
function convInputGrad(
  g: GraphBuilder,
  l: ConvLayer,
  weight: string,
  inSize: readonly [number, number],
  gy: string,
): string {
  const k = l.kernel;
  const p = l.pad;
  if (l.stride !== 1 || k - 1 - p < 0) {
    const [oh, ow] = outputSize(l, inSize);
    const extra = (n: number, o: number) => n - (l.stride * (o - 1) + k - 2 * p);
    return g.node("ConvTranspose", [gy, weight], {
      kernel_shape: [k, k],
      strides: [l.stride, l.stride],
      pads: [p, p, p, p],
      output_padding: [extra(inSize[0], oh), extra(inSize[1], ow)],
    });
  }
  const big = 1 << 30;
  const flipped = g.node("Slice", [
    weight,
    g.ints(g.fresh("starts"), [-1, -1]),
    g.ints(g.fresh("ends"), [-big, -big]),
    g.ints(g.fresh("axes"), [2, 3]),
    g.ints(g.fresh("steps"), [-1, -1]),
  ]);
  const swapped = g.node("Transpose", [flipped], { perm: [1, 0, 2, 3] });
  const q = k - 1 - p;
  return g.node("Conv", [gy, swapped], {
    kernel_shape: [k, k],
    strides: [1, 1],
    pads: [q, q, q, q],
  });
}

/**
 * The interpolation matrix (out x in) of PyTorch's bilinear resize along one axis,
 * align_corners false: source = max((dst + 0.5) in / out - 0.5, 0), linear between
 * floor(source) and the next index (clamped).
 */
export function bilinearMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = Math.fround(inSize / outSize);
  for (let y = 0; y < outSize; y++) {
    const src = Math.max(Math.fround(Math.fround(scale * (y + 0.5)) - 0.5), 0);
    const i0 = Math.floor(src);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = Math.fround(src - i0);
    m[y * inSize + i0] = (m[y * inSize + i0] ?? 0) + (1 - l1);
    m[y * inSize + i1] = (m[y * inSize + i1] ?? 0) + l1;
  }
  return m;
}

/** dX of a bilinear resize: Rh^T dy Rw with the interpolation matrices as constants. */
function resizeInputGrad(
  g: GraphBuilder,
  inSize: readonly [number, number],
  outSize: readonly [number, number],
  gy: string,
): string {
  const [ih, iw] = inSize;
  const [oh, ow] = outSize;
  const rh = bilinearMatrix(ih, oh);
  const rhT = new Float32Array(ih * oh);
  for (let y = 0; y < oh; y++) for (let i = 0; i < ih; i++) rhT[i * oh + y] = rh[y * ih + i] ?? 0;
  const left = g.floats(g.fresh("resize_rh_t"), tensor([ih, oh], rhT));
  const right = g.floats(g.fresh("resize_rw"), tensor([ow, iw], bilinearMatrix(iw, ow)));
  return g.node("MatMul", [g.node("MatMul", [left, gy]), right]);
}

/** dX of a k2 s2 average pool with padding p counted in the divisor. */
function avgPoolInputGrad(
  g: GraphBuilder,
  p: number,
  inSize: readonly [number, number],
  outSize: readonly [number, number],
  gy: string,
): string {
  const [oh, ow] = outSize;
  const [ih, iw] = inSize;
  const quarter = g.floats(g.fresh("quarter"), tensor([], Float32Array.of(0.25)));
  const scaled = g.node("Mul", [gy, quarter]);
  // Nearest-neighbour upsampling by 2 copies each value to its 2x2 window (measured about
  // 8x faster in ONNX Runtime than Unsqueeze + Expand + Reshape).
  const scales = g.floats(g.fresh("scales"), tensor([4], Float32Array.of(1, 1, 2, 2)));
  const r = g.node("Resize", [scaled, "", scales], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  // Padded input rows and columns the windows do not reach get zero; then crop the padding.
  const padded = g.node("Pad", [
    r,
    g.ints(g.fresh("pads"), [0, 0, 0, 0, 0, 0, ih + 2 * p - 2 * oh, iw + 2 * p - 2 * ow]),
  ], {
    mode: "constant",
  });
  if (p === 0) return padded;
  return g.node("Slice", [
    padded,
    g.ints(g.fresh("starts"), [p, p]),
    g.ints(g.fresh("ends"), [p + ih, p + iw]),
    g.ints(g.fresh("axes"), [2, 3]),
  ]);
}
