/**
 * EfficientAD's training step as one ONNX graph that ONNX Runtime executes: the forward
 * passes, a hand-derived backward of the fixed architecture (no autograd) and, optionally,
 * PyTorch's Adam, for batch 1 as in anomalib's recipe. Built up by options, from the
 * student's hard-feature loss alone to the whole step of student and autoencoder.
 *
 * Losses (`../shared/SPEC-efficientad.md`, Training):
 * - `loss_hard`: with d = (t - s(x)[:, :C])^2 and d_hard its 0.999-quantile (torch.quantile's
 *   linear interpolation, found with TopK over the flattened d), the mean of d where
 *   d >= d_hard;
 * - `loss_penalty` (option `penalty`): mean(s(p)[:, :C]^2) for a penalty image p;
 * - `loss_stae` (option `stae`): mean((ae(x_aug) - s(x_aug)[:, C:])^2), with ae(x_aug) an
 *   input or, with option `autoencoder`, computed in the graph, which then also adds
 *   `loss_ae` = mean((t_aug - ae(x_aug))^2) and the autoencoder's backward;
 * - option `adam`: one PyTorch Adam step (L2 weight decay added to the gradient) per
 *   parameter.
 *
 * Backward, layer by layer:
 * - d loss_hard / d s[:, :C] = 2 (s - t) mask / count; d loss_penalty / d s(p)[:, :C] =
 *   2 s(p) / (C h w); d loss_stae / d s(x_aug)[:, C:] = -2 (a - s) / (C h w); zero for the
 *   channels a loss does not read; d loss_ae / d a = 2 (a - t_aug) / (C h w);
 * - ReLU: multiply by (output > 0); dropout: multiply by the same mask;
 * - conv bias: sum over the spatial axes;
 * - conv weight: im2col of the (padded) layer input as K*K (strided) slices, then one Gemm
 *   dW[o, (i, a, b)] = sum over p of dy[o, p] patches[(i, a, b), p] (measured faster in ONNX
 *   Runtime than the convolution with batch and channel axes swapped, whose kernel is the
 *   whole output, and as fast as K*K separate Gemms);
 * - conv input, stride 1: a convolution of dy padded by k - 1 - p with the flipped,
 *   in/out-swapped kernel; strided: ConvTranspose with the same weight;
 * - average pool (count_include_pad): each output gradient / 4 copied to its 2x2 window
 *   (nearest-neighbour Resize, about 8x faster here than Expand), the padding cropped;
 * - bilinear resize: Rh^T dy Rw with PyTorch's interpolation matrices as constants.
 *
 * Graph interface (opset 18): inputs `input` (1 x 3 x H x W, RGB in [0, 1]), `teacher`
 * (1 x C x h x w, the teacher's output already normalised with mean_std), with `penalty`
 * also `penalty` (1 x 3 x H x W), and every student parameter under its state-dict name
 * (`student.conv1.weight`, ...): parameters are inputs because they change every step.
 * With `stae` also `augmented` (1 x 3 x H x W) and either `ae_output` (1 x C x h x w, the
 * autoencoder's output on it) or, with `autoencoder`, `teacher_augmented` (the normalised
 * teacher output on x_aug), every autoencoder parameter (`ae.encoder.enconv1.weight`, ...)
 * and with dropout a mask per decoder block ({@linkcode dropoutName},
 * {@linkcode dropoutShapes}). With `adam` also the scalar inputs `adam.step_size` and
 * `adam.bias_correction2_sqrt` ({@linkcode adamScalars}) and each parameter's Adam state
 * (`adam.m.<name>`, `adam.v.<name>`, zeros at the first step).
 * Outputs: `loss_hard`, with `penalty` `loss_penalty`, with `stae` `loss_stae` and
 * `grad.ae_output` (d loss_stae / d ae_output), with `autoencoder` `loss_ae`, and
 * `grad.<parameter name>` for every parameter, the gradient of the sum of the losses; with
 * `adam` also `next.<name>`, `next.adam.m.<name>`, `next.adam.v.<name>`, to feed back in.
 *
 * @module
 */
import { tensor } from "../../core/tensor.ts";
import { networkOutputSize, networks, outputSize } from "../../model/architecture.ts";
import { type EfficientAdConfig, IMAGENET_MEAN, IMAGENET_STD } from "../../model/config.ts";
import { GraphBuilder } from "../../infer/onnx/graph_builder.ts";
import onnxProto from "onnx-proto";
import { backward, forward, type TapeEntry } from "./backward_graph.ts";

/** The default-domain opset the graph uses. */
export const TRAIN_OPSET = 18;

/** The 0.999 quantile of the hard-feature loss. */
export const HARD_QUANTILE = 0.999;

/** PyTorch Adam's constants (the step-dependent scalars are graph inputs). */
export interface AdamConstants {
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
  /** L2 weight decay added to the gradient, as PyTorch's Adam does. Default 1e-5. */
  readonly weightDecay?: number;
}

/** Options of {@linkcode buildTrainStepGraph}. */
export interface TrainStepOptions {
  /** Also take a penalty image and add the penalty loss. Default false. */
  readonly penalty?: boolean;
  /**
   * Also take the augmented image and the autoencoder's output on it and add
   * loss_stae = mean((ae(x_aug) - s(x_aug)[:, C:])^2); outputs its gradient w.r.t. the
   * autoencoder's output as `grad.ae_output` for the autoencoder's backward. Default false.
   */
  readonly stae?: boolean;
  /**
   * With `stae`: run the autoencoder in the graph on the augmented image instead of taking
   * `ae_output`, add loss_ae = mean((t_aug - ae(x_aug))^2) with the input
   * `teacher_augmented` (the normalised teacher output on x_aug), and output (and, with
   * `adam`, update) the autoencoder's gradients too. `dropout`: take a mask input per
   * decoder block ({@linkcode dropoutName}). Default: no autoencoder.
   */
  readonly autoencoder?: { readonly dropout?: boolean };
  /** Apply one Adam step in the graph (see {@linkcode adamScalars}). Default: no Adam. */
  readonly adam?: AdamConstants;
}

/**
 * The step-dependent Adam scalars the graph takes as inputs `adam.step_size` and
 * `adam.bias_correction2_sqrt`, computed in float64 as PyTorch does: lr / (1 - beta1^t)
 * and sqrt(1 - beta2^t) for step t (1-based).
 */
export function adamScalars(
  lr: number,
  step: number,
  constants: AdamConstants = {},
): { stepSize: number; biasCorrection2Sqrt: number } {
  const b1 = constants.beta1 ?? 0.9;
  const b2 = constants.beta2 ?? 0.999;
  return { stepSize: lr / (1 - b1 ** step), biasCorrection2Sqrt: Math.sqrt(1 - b2 ** step) };
}

/** The names of a parameter's Adam state inputs and of its updated-value outputs. */
export function adamNames(parameter: string): {
  m: string;
  v: string;
  nextParam: string;
  nextM: string;
  nextV: string;
} {
  return {
    m: `adam.m.${parameter}`,
    v: `adam.v.${parameter}`,
    nextParam: `next.${parameter}`,
    nextM: `next.adam.m.${parameter}`,
    nextV: `next.adam.v.${parameter}`,
  };
}

/** A student parameter: its state-dict name and shape. */
export interface ParameterInfo {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The student's parameters in graph order (weight, bias per convolution). */
export function studentParameters(config: EfficientAdConfig): ParameterInfo[] {
  const out: ParameterInfo[] = [];
  for (const l of networks(config).student) {
    if (l.op !== "conv") continue;
    out.push({
      name: `student.${l.name}.weight`,
      shape: [l.outChannels, l.inChannels, l.kernel, l.kernel],
    });
    out.push({ name: `student.${l.name}.bias`, shape: [l.outChannels] });
  }
  return out;
}

/** The name of a parameter's gradient output. */
export function gradName(parameter: string): string {
  return `grad.${parameter}`;
}

/**
 * Sorted positions for torch.quantile's linear interpolation over n values, computed in
 * float32 as PyTorch does for a float32 input: `rank = q (n - 1)`, the values at
 * floor(rank) and ceil(rank) of the ascending order, and the weight `rank - floor(rank)`.
 */
export function quantilePositions(
  n: number,
  q: number,
): { lo: number; hi: number; weight: number } {
  const rank = Math.fround(Math.fround(q) * Math.fround(n - 1));
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return { lo, hi, weight: Math.fround(rank - lo) };
}

/** The decoder convolutions followed by dropout in training (anomalib's decoder blocks 1-6). */
export const DROPOUT_LAYERS: readonly string[] = [1, 2, 3, 4, 5, 6].map((i) =>
  `decoder.deconv${i}`
);

/** The dropout mask input of a decoder layer (values 0 or 1 / (1 - p)). */
export function dropoutName(layer: string): string {
  return `dropout.${layer}`;
}

/** The shape of each decoder layer's dropout mask input, by layer name. */
export function dropoutShapes(config: EfficientAdConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let size: [number, number] = [config.imageSize[0], config.imageSize[1]];
  for (const l of networks(config).ae) {
    size = outputSize(l, size);
    if (l.op === "conv" && DROPOUT_LAYERS.includes(l.name)) {
      out.set(l.name, [1, l.outChannels, size[0], size[1]]);
    }
  }
  return out;
}

/** The autoencoder's parameters in graph order (weight, bias per convolution). */
export function aeParameters(config: EfficientAdConfig): ParameterInfo[] {
  const out: ParameterInfo[] = [];
  for (const l of networks(config).ae) {
    if (l.op !== "conv") continue;
    out.push({
      name: `ae.${l.name}.weight`,
      shape: [l.outChannels, l.inChannels, l.kernel, l.kernel],
    });
    out.push({ name: `ae.${l.name}.bias`, shape: [l.outChannels] });
  }
  return out;
}

/**
 * Builds the graph (see the module documentation).
 *
 * @throws {RangeError} when `autoencoder` is set without `stae`.
 */
export function buildTrainStepGraph(
  config: EfficientAdConfig,
  options: TrainStepOptions = {},
): Uint8Array {
  const g = new GraphBuilder();
  const [H, W] = config.imageSize;
  const c = config.teacherOutChannels;
  const layers = networks(config).student;
  const [h, w] = networkOutputSize(layers, [H, W]);
  const params = studentParameters(config);
  for (const p of params) g.input(p.name, p.shape);
  const x = g.input("input", [1, 3, H, W]);
  const t = g.input("teacher", [1, c, h, w]);

  const mean = g.floats("imagenet_mean", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_MEAN)));
  const std = g.floats("imagenet_std", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_STD)));
  const normalise = (v: string) => g.node("Div", [g.node("Sub", [v, mean]), std]);
  const axisC = g.ints("axis_c", [1]);
  const zero = g.ints("zero", [0]);
  const cEnd = g.ints("c_end", [c]);
  const firstC = (v: string) => g.node("Slice", [v, zero, cEnd, axisC]);
  // Zero gradient for the second C channels (the autoencoder half of the student).
  const padChannels = g.ints("pad_channels", [0, 0, 0, 0, 0, c, 0, 0]);
  const full = (v: string) => g.node("Pad", [v, padChannels], { mode: "constant" });

  // Hard-feature loss on x.
  const fx = forward(g, "student", layers, normalise(x), [H, W]);
  const diff = g.node("Sub", [firstC(fx.output), t]);
  const d = g.node("Mul", [diff, diff]);
  const n = c * h * w;
  const { lo, hi, weight } = quantilePositions(n, HARD_QUANTILE);
  const top = g.node(
    "TopK",
    [g.node("Reshape", [d, g.ints("flat", [-1])]), g.ints("k", [n - lo])],
    {
      axis: 0,
      largest: 1,
      sorted: 1,
    },
  );
  const below = g.node("Gather", [top, g.ints("i_lo", [n - 1 - lo])], { axis: 0 });
  const above = g.node("Gather", [top, g.ints("i_hi", [n - 1 - hi])], { axis: 0 });
  const scalar = (name: string, v: number) => g.floats(name, tensor([], Float32Array.of(v)));
  // torch's lerp: start + w (end - start) for w < 0.5, else end - (end - start) (1 - w).
  const span = g.node("Sub", [above, below]);
  const dHard = weight < 0.5
    ? g.node("Add", [below, g.node("Mul", [span, scalar("q_weight", weight)])])
    : g.node("Sub", [above, g.node("Mul", [span, scalar("q_weight", 1 - weight)])]);
  const mask = g.node("Cast", [g.node("GreaterOrEqual", [d, dHard])], { to: 1 });
  const count = g.node("ReduceSum", [mask], { keepdims: 0 });
  const lossHard = g.node("Div", [
    g.node("ReduceSum", [g.node("Mul", [d, mask])], { keepdims: 0 }),
    count,
  ]);
  g.node("Reshape", [lossHard, g.ints("scalar_shape", [])], {}, "loss_hard");
  g.output("loss_hard", []);
  const gradHard = g.node("Div", [
    g.node("Mul", [g.node("Mul", [diff, scalar("two", 2)]), mask]),
    count,
  ]);
  const grads = backward(g, fx.tape, full(gradHard));
  let aeForward: { output: string; tape: TapeEntry[] } | undefined;

  if (options.penalty) {
    const p = g.input("penalty", [1, 3, H, W]);
    const fp = forward(g, "student", layers, normalise(p), [H, W]);
    const sp = firstC(fp.output);
    const lossPenalty = g.node("ReduceMean", [g.node("Mul", [sp, sp])], { keepdims: 0 });
    g.node("Identity", [lossPenalty], {}, "loss_penalty");
    g.output("loss_penalty", []);
    const gradPenalty = g.node("Mul", [sp, scalar("penalty_scale", 2 / n)]);
    const more = backward(g, fp.tape, full(gradPenalty));
    for (const [k, v] of more) grads.set(k, g.node("Add", [grads.get(k) ?? v, v]));
  }

  if (options.stae) {
    const xa = g.input("augmented", [1, 3, H, W]);
    const xan = normalise(xa);
    let a: string;
    if (options.autoencoder) {
      for (const p of aeParameters(config)) g.input(p.name, p.shape);
      const masks = new Map<string, string>();
      if (options.autoencoder.dropout) {
        for (const [layer, shape] of dropoutShapes(config)) {
          masks.set(layer, g.input(dropoutName(layer), shape));
        }
      }
      aeForward = forward(g, "ae", networks(config).ae, xan, [H, W], masks);
      a = aeForward.output;
    } else {
      a = g.input("ae_output", [1, c, h, w]);
    }
    const fa = forward(g, "student", layers, xan, [H, W]);
    const sa = g.node("Slice", [fa.output, cEnd, g.ints("c_end2", [2 * c]), axisC]);
    const diffA = g.node("Sub", [a, sa]);
    const lossStae = g.node("ReduceMean", [g.node("Mul", [diffA, diffA])], { keepdims: 0 });
    g.node("Identity", [lossStae], {}, "loss_stae");
    g.output("loss_stae", []);
    const gradA = g.node("Mul", [diffA, scalar("stae_scale", 2 / n)]);
    g.node("Identity", [gradA], {}, "grad.ae_output");
    g.output("grad.ae_output", [1, c, h, w]);
    const padFront = g.ints("pad_front", [0, c, 0, 0, 0, 0, 0, 0]);
    const gradS = g.node("Pad", [g.node("Neg", [gradA]), padFront], { mode: "constant" });
    const more = backward(g, fa.tape, gradS);
    for (const [k, v] of more) grads.set(k, g.node("Add", [grads.get(k) ?? v, v]));
    if (aeForward) {
      const ta = g.input("teacher_augmented", [1, c, h, w]);
      const diffT = g.node("Sub", [a, ta]);
      const lossAe = g.node("ReduceMean", [g.node("Mul", [diffT, diffT])], { keepdims: 0 });
      g.node("Identity", [lossAe], {}, "loss_ae");
      g.output("loss_ae", []);
      const gradAe = g.node("Add", [gradA, g.node("Mul", [diffT, scalar("ae_scale", 2 / n)])]);
      for (const [k, v] of backward(g, aeForward.tape, gradAe)) grads.set(k, v);
      params.push(...aeParameters(config));
    }
  } else if (options.autoencoder) {
    throw new RangeError("Cannot build the training graph: the autoencoder needs the stae loss");
  }

  for (const p of params) {
    const v = grads.get(p.name);
    if (v === undefined) throw new RangeError(`No gradient for ${p.name}`);
    g.node("Identity", [v], {}, gradName(p.name));
    g.output(gradName(p.name), p.shape);
  }
  if (options.adam) adamStep(g, params, grads, options.adam);
  return addTopKIndices(
    g.encode({
      opset: TRAIN_OPSET,
      producer: "efficientad-edge",
      docString: `EfficientAD ${config.size.toUpperCase()} student gradients ${H}x${W}`,
    }),
  );
}

/**
 * One PyTorch Adam step (no amsgrad) per parameter: g' = g + wd p; m = m + (1 - b1)(g' - m);
 * v = b2 v + (1 - b2) g'^2; p = p - step_size m / (sqrt(v) / sqrt(bc2) + eps).
 */
function adamStep(
  g: GraphBuilder,
  params: readonly ParameterInfo[],
  grads: ReadonlyMap<string, string>,
  constants: AdamConstants,
): void {
  const f = (name: string, v: number) => g.floats(name, tensor([], Float32Array.of(v)));
  const b1 = constants.beta1 ?? 0.9;
  const b2 = constants.beta2 ?? 0.999;
  const wd = f("adam_wd", constants.weightDecay ?? 1e-5);
  const oneMinusB1 = f("adam_1mb1", 1 - b1);
  const beta2 = f("adam_b2", b2);
  const oneMinusB2 = f("adam_1mb2", 1 - b2);
  const eps = f("adam_eps", constants.eps ?? 1e-8);
  const stepSize = g.input("adam.step_size", []);
  const bc2 = g.input("adam.bias_correction2_sqrt", []);
  for (const p of params) {
    const names = adamNames(p.name);
    const m = g.input(names.m, p.shape);
    const v = g.input(names.v, p.shape);
    const grad = grads.get(p.name);
    if (grad === undefined) throw new RangeError(`No gradient for ${p.name}`);
    const gd = g.node("Add", [grad, g.node("Mul", [p.name, wd])]);
    g.node("Add", [m, g.node("Mul", [oneMinusB1, g.node("Sub", [gd, m])])], {}, names.nextM);
    g.node(
      "Add",
      [g.node("Mul", [v, beta2]), g.node("Mul", [oneMinusB2, g.node("Mul", [gd, gd])])],
      {},
      names.nextV,
    );
    const denom = g.node("Add", [g.node("Div", [g.node("Sqrt", [names.nextV]), bc2]), eps]);
    const update = g.node("Div", [g.node("Mul", [names.nextM, stepSize]), denom]);
    g.node("Sub", [p.name, update], {}, names.nextParam);
    g.output(names.nextParam, p.shape);
    g.output(names.nextM, p.shape);
    g.output(names.nextV, p.shape);
  }
}

/** Gives every TopK node its (required, unused) indices output: GraphBuilder makes one. */
function addTopKIndices(bytes: Uint8Array): Uint8Array {
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(bytes);
  for (const node of model.graph?.node ?? []) {
    const outs = node.output;
    if (node.opType === "TopK" && outs?.length === 1) {
      outs.push(`${outs[0]}_indices`);
    }
  }
  return onnx.ModelProto.encode(model).finish();
}
