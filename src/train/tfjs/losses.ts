/**
 * EfficientAD's training losses (SPEC, Training), as anomalib's `compute_losses` computes
 * them, in TensorFlow.js (NHWC):
 *
 * - d = (t_norm(x) - s(x)[..., :C])^2; d_hard = the 0.999-quantile of d (torch.quantile's
 *   linear interpolation, by selection on the values); loss_hard = mean of d where
 *   d >= d_hard; loss_penalty = mean(s(p)[..., :C]^2); loss_st = loss_hard + loss_penalty;
 * - loss_ae = mean((t_norm(x_aug) - ae(x_aug))^2);
 * - loss_stae = mean((ae(x_aug) - s(x_aug)[..., C:])^2).
 *
 * The teacher is frozen: its normalised outputs are computed beforehand
 * ({@linkcode teacherTarget}) and enter the losses as constants.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ConvLayer } from "../../model/architecture.ts";
import type { EfficientAdConfig } from "../../model/config.ts";
import {
  type ConvParams,
  type EfficientAdParams,
  forwardNetwork,
  type ForwardOptions,
  type Network,
} from "../../infer/tfjs/networks.ts";
import { resizeBilinearWithGrad } from "./resize_grad.ts";
import { quantile } from "../../core/torch_quantile.ts";

/** The quantile of the hard-feature loss. */
export const HARD_QUANTILE = 0.999;

/** anomalib caps the values the hard-feature quantile is taken over at 2^24. */
export const MAX_QUANTILE_ELEMENTS = 2 ** 24;

/** A convolution's trainable parameters. */
export interface TrainableConv extends ConvParams {
  /** kh x kw x in x out. */
  readonly weight: tf.Variable<tf.Rank.R4>;
  /** One value per output channel. */
  readonly bias: tf.Variable<tf.Rank.R1>;
}

/** A model being trained: the frozen teacher and the trainable student and autoencoder. */
export interface TrainableModel {
  /** The architecture. */
  readonly config: EfficientAdConfig;
  /** The frozen teacher (not owned: the caller disposes the parameters it came from). */
  readonly teacher: Network;
  /** The teacher-output normalisation per channel (not owned either). */
  readonly meanStd: { readonly mean: tf.Tensor1D; readonly std: tf.Tensor1D };
  /** The student, its parameters `tf.Variable`s. */
  readonly student: Network;
  /** The autoencoder, its parameters `tf.Variable`s. */
  readonly ae: Network;
  /**
   * Every trainable tensor by its anomalib state-dict name (`student.conv1.weight`,
   * `ae.decoder.deconv8.bias`, ...). Weights are HWIO (anomalib's are OIHW).
   */
  readonly variables: ReadonlyMap<string, tf.Variable>;
}

/**
 * Makes the student and autoencoder of `params` trainable: copies of their parameters as
 * `tf.Variable`s. The teacher and `meanStd` are shared with `params`, which must outlive
 * the result. Dispose the result with {@linkcode disposeTrainableModel}.
 *
 * @throws {RangeError} when `params` has no teacher normalisation (`mean_std`).
 */
export function trainableModel(
  params: Omit<EfficientAdParams, "meanStd"> & Partial<Pick<EfficientAdParams, "meanStd">>,
): TrainableModel {
  if (params.meanStd === undefined) {
    throw new RangeError(
      "Cannot train: the model has no teacher channel statistics (mean_std); compute them first",
    );
  }
  const variables = new Map<string, tf.Variable>();
  const copy = (prefix: "student" | "ae", network: Network): Network => {
    const out = new Map<string, TrainableConv>();
    for (const [name, p] of network.params) {
      const weight = tf.variable(p.weight, true);
      const bias = tf.variable(p.bias, true);
      variables.set(`${prefix}.${name}.weight`, weight);
      variables.set(`${prefix}.${name}.bias`, bias);
      out.set(name, { weight, bias });
    }
    return { layers: network.layers, params: out };
  };
  return {
    config: params.config,
    teacher: params.teacher,
    meanStd: params.meanStd,
    student: copy("student", params.student),
    ae: copy("ae", params.ae),
    variables,
  };
}

/** Disposes the variables of a {@linkcode TrainableModel}. */
export function disposeTrainableModel(model: TrainableModel): void {
  for (const v of model.variables.values()) v.dispose();
}

/**
 * The teacher's output on RGB images in [0, 1] (NHWC), normalised per channel with the
 * model's mean and std. The caller owns the result.
 */
export function teacherTarget(
  model: Pick<TrainableModel, "teacher" | "meanStd">,
  x: tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() =>
    tf.div(tf.sub(forwardNetwork(model.teacher, x), model.meanStd.mean), model.meanStd.std)
  );
}

/**
 * The hard-feature loss of squared differences d: the mean of the elements at or above
 * the 0.999-quantile of d. The threshold is read from the values (it carries no gradient,
 * as in PyTorch, where it only selects elements). Call it inside `tf.tidy` or a tape.
 *
 * @throws {RangeError} when d holds more than 2^24 elements (anomalib then quantiles a
 * random subset, which this does not reproduce).
 */
export function hardFeatureLoss(d: tf.Tensor): tf.Scalar {
  if (d.size > MAX_QUANTILE_ELEMENTS) {
    throw new RangeError(
      `Cannot compute the hard-feature loss over ${d.size} values: more than 2^24`,
    );
  }
  const values = d.dataSync() as Float32Array;
  const threshold = quantile(values, HARD_QUANTILE);
  const mask = new Float32Array(values.length);
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i]! >= threshold) {
      mask[i] = 1;
      count++;
    }
  }
  return tf.div(accurateSum(tf.mul(d, tf.tensor(mask, d.shape))), count);
}

/**
 * The mean of all elements, reduced over the last axis first and then over the rest:
 * tfjs's wasm backend sums a whole tensor of a million values in one float32 accumulator
 * (about 5e-4 relative error); two levels keep it near 1e-7.
 */
export function accurateMean(t: tf.Tensor): tf.Scalar {
  return t.rank > 1 ? tf.mean(tf.mean(t, -1)) : tf.mean(t);
}

/** The sum of all elements, in two levels like {@linkcode accurateMean}. */
export function accurateSum(t: tf.Tensor): tf.Scalar {
  return t.rank > 1 ? tf.sum(tf.sum(t, -1)) : tf.sum(t);
}

/** The images of one training step, NHWC RGB in [0, 1], batch 1. */
export interface StepImages {
  /** The training image x. */
  readonly image: tf.Tensor4D;
  /** The penalty image p (a natural image that is not from the product). */
  readonly penalty?: tf.Tensor4D;
  /** The augmented training image x_aug. */
  readonly augmented: tf.Tensor4D;
}

/** The frozen teacher's normalised outputs of one step (see {@linkcode teacherTarget}). */
export interface StepTargets {
  /** t_norm(x). */
  readonly image: tf.Tensor4D;
  /** t_norm(x_aug). */
  readonly augmented: tf.Tensor4D;
}

/** The losses of one step as tfjs scalars (a type alias, so `tf.tidy` can return it). */
export type LossTensors = {
  /** loss_hard + loss_penalty. */
  readonly lossSt: tf.Scalar;
  /** mean((t_norm(x_aug) - ae(x_aug))^2). */
  readonly lossAe: tf.Scalar;
  /** mean((ae(x_aug) - s(x_aug)[..., C:])^2). */
  readonly lossStae: tf.Scalar;
  /** The sum of the three. */
  readonly loss: tf.Scalar;
};

/** Options of {@linkcode computeLosses}. */
export interface LossOptions {
  /** The convolution (for example `conv2dWithGrad` on backends without its gradient). */
  readonly conv2d?: ForwardOptions["conv2d"];
  /**
   * Dropout probability after the decoder's `deconv1` to `deconv6` (anomalib: 0.2 while
   * training); 0 (the default) disables it.
   */
  readonly aeDropout?: number;
  /** Seed of the dropout masks. */
  readonly dropoutSeed?: number;
}

const DROPOUT_LAYERS = new Set([1, 2, 3, 4, 5, 6].map((i) => `decoder.deconv${i}`));

/**
 * anomalib's decoder dropout as an `afterConv` hook: after `decoder.deconv1` to
 * `deconv6`, each element is zeroed with probability `p` and the rest scaled by
 * 1 / (1 - p) (inverted dropout, as `nn.Dropout` in training mode). The masks are drawn
 * from tfjs's seeded generator with seeds `seed`, `seed + 1`, ... in layer order (not
 * PyTorch's generator).
 *
 * @throws {RangeError} when `p` is outside [0, 1).
 */
export function decoderDropout(
  p: number,
  seed: number,
): (y: tf.Tensor4D, layer: ConvLayer) => tf.Tensor4D {
  if (!(p >= 0 && p < 1)) throw new RangeError(`Cannot use dropout probability ${p}`);
  let next = seed;
  return (y, layer) => {
    if (!DROPOUT_LAYERS.has(layer.name) || p === 0) return y;
    const keep = tf.cast(
      tf.greaterEqual(tf.randomUniform(y.shape, 0, 1, "float32", next++), p),
      "float32",
    );
    return tf.mul(y, tf.div(keep, 1 - p));
  };
}

/**
 * The three losses of one step (see the module documentation). Intermediate tensors are
 * not disposed: call it inside `tf.tidy` or under `tf.variableGrads`.
 */
export function computeLosses(
  model: TrainableModel,
  images: StepImages,
  targets: StepTargets,
  options: LossOptions = {},
): LossTensors {
  const c = model.config.teacherOutChannels;
  const p = options.aeDropout ?? 0;
  const afterConv = p > 0 ? decoderDropout(p, options.dropoutSeed ?? 0) : undefined;
  const fwd: ForwardOptions = {
    resize: resizeBilinearWithGrad,
    ...(options.conv2d ? { conv2d: options.conv2d } : {}),
  };
  const first = (t: tf.Tensor4D) => tf.slice(t, [0, 0, 0, 0], [-1, -1, -1, c]);
  // The student's three inputs (x, x_aug, p) run as one batch: fewer, larger convolutions
  // (the filter gradient contracts over the batch).
  const inputs = [images.image, images.augmented, ...(images.penalty ? [images.penalty] : [])];
  const sAll = forwardNetwork(model.student, tf.concat(inputs, 0), fwd);
  const item = (i: number) => tf.slice(sAll, [i, 0, 0, 0], [1, -1, -1, -1]);
  const s = item(0);
  const d = tf.squaredDifference(targets.image, first(s));
  let lossSt: tf.Scalar = hardFeatureLoss(d);
  if (images.penalty !== undefined) {
    const sp = first(item(2));
    lossSt = tf.add(lossSt, accurateMean(tf.square(sp)));
  }
  const aeOut = forwardNetwork(model.ae, images.augmented, {
    ...fwd,
    ...(afterConv ? { afterConv } : {}),
  });
  const sAug = item(1);
  const lossAe = accurateMean(tf.squaredDifference(targets.augmented, aeOut));
  const lossStae = accurateMean(
    tf.squaredDifference(aeOut, tf.slice(sAug, [0, 0, 0, c], [-1, -1, -1, c])),
  );
  const loss: tf.Scalar = tf.add(tf.add(lossSt, lossAe), lossStae);
  return { lossSt, lossAe, lossStae, loss };
}
