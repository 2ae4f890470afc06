/**
 * EfficientAD's networks and anomaly maps in TensorFlow.js ops, driven by the layer lists
 * of `model/architecture.ts`.
 *
 * tfjs is NHWC: every tensor here is N x H x W x C, and convolution weights are HWIO
 * (converted from PyTorch's OIHW by {@linkcode networkParams}). The forward passes are
 * pure functions of (parameters, input): training can pass `tf.Variable`s as parameters
 * and differentiate through them.
 *
 * PyTorch semantics reproduced: convolutions zero-pad symmetrically and round the output
 * size down; average pooling pads with zeros that count in the divisor (an explicit
 * `tf.pad`, then a VALID pool); bilinear resizing uses half-pixel centres without
 * antialiasing (`align_corners=False`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "../../core/tensor.ts";
import { formatShape, sameShape } from "../../core/tensor.ts";
import { type ConvLayer, type Layer, networks } from "../../model/architecture.ts";
import { type EfficientAdConfig, IMAGENET_MEAN, IMAGENET_STD } from "../../model/config.ts";
import { hasMeanStd, type Quantiles, quantilesOf, type StateDict } from "../../model/state_dict.ts";

/** One convolution's parameters: weight HWIO (kh x kw x in x out), bias (out). */
export interface ConvParams {
  /** kh x kw x in x out. */
  readonly weight: tf.Tensor4D;
  /** One value per output channel. */
  readonly bias: tf.Tensor1D;
}

/** A network's parameters by layer name (`conv1`, `encoder.enconv1`, ...). */
export type NetworkParams = ReadonlyMap<string, ConvParams>;

/**
 * A network: its layers (from `model/architecture.ts`) and their parameters. Training can
 * make one whose parameters are `tf.Variable`s.
 */
export interface Network {
  /** The steps, in order. */
  readonly layers: readonly Layer[];
  /** Each convolution's parameters by layer name. */
  readonly params: NetworkParams;
}

/**
 * A convolution without bias: NHWC input, HWIO weight, symmetric zero padding `pad`,
 * square stride. Training may substitute its own (for instance with a custom gradient).
 */
export type Conv2dFn = (
  x: tf.Tensor4D,
  weight: tf.Tensor4D,
  options: { readonly stride: number; readonly pad: number },
) => tf.Tensor4D;

/** Options of {@linkcode forwardLayers} and {@linkcode forwardNetwork}. */
export interface ForwardOptions {
  /**
   * Replaces the convolution. Without it, bias and ReLU are fused into tfjs's
   * convolution; with it, they are applied after it.
   */
  readonly conv2d?: Conv2dFn;
  /**
   * Called with each convolution's output (after its ReLU, if any); its result replaces
   * the output. Training uses it for the autoencoder decoder's dropout.
   */
  readonly afterConv?: (y: tf.Tensor4D, layer: ConvLayer) => tf.Tensor4D;
  /**
   * Replaces the bilinear resize of the `resize` layers (default
   * {@linkcode resizeBilinear}). Training passes one with a correct gradient: tfjs's
   * `ResizeBilinearGrad` ignores half-pixel centres.
   */
  readonly resize?: (x: tf.Tensor4D, size: readonly [number, number]) => tf.Tensor4D;
}

/**
 * Converts a PyTorch OIHW convolution weight to a tfjs HWIO tensor.
 *
 * @throws {RangeError} when the tensor is not 4-D.
 */
export function oihwToHwio(weight: Tensor): tf.Tensor4D {
  const [o, i, kh, kw] = weight.shape;
  if (
    weight.shape.length !== 4 || o === undefined || i === undefined || kh === undefined ||
    kw === undefined
  ) {
    throw new RangeError(
      `Cannot convert a convolution weight of shape ${formatShape(weight.shape)}: expected OIHW`,
    );
  }
  return tf.tidy(() => tf.transpose(tf.tensor4d(weight.data, [o, i, kh, kw]), [2, 3, 1, 0]));
}

/** Options of {@linkcode networkParams}. */
export interface NetworkParamsOptions {
  /**
   * The state-dict prefix with its dot, such as `teacher.` or `ae.`; default `""` (a
   * teacher-only file such as anomalib's `pretrained_teacher_small.pth`).
   */
  readonly prefix?: string;
}

/**
 * Uploads one network's weights from a state dict: for each convolution of `layers`,
 * `${prefix}${layer.name}.weight` (OIHW, converted to HWIO) and `.bias`. The caller owns
 * the returned tensors (see {@linkcode disposeNetworkParams}).
 *
 * @throws {RangeError} when a weight is missing or has the wrong shape.
 */
export function networkParams(
  dict: StateDict,
  layers: readonly Layer[],
  options: NetworkParamsOptions = {},
): Map<string, ConvParams> {
  const prefix = options.prefix ?? "";
  const params = new Map<string, ConvParams>();
  try {
    for (const layer of layers) {
      if (layer.op !== "conv") continue;
      const w = dict.get(`${prefix}${layer.name}.weight`);
      const b = dict.get(`${prefix}${layer.name}.bias`);
      const shape = [layer.outChannels, layer.inChannels, layer.kernel, layer.kernel];
      if (w === undefined || b === undefined) {
        throw new RangeError(
          `Cannot convert weights: the state dict has no "${prefix}${layer.name}.${
            w === undefined ? "weight" : "bias"
          }"`,
        );
      }
      if (!sameShape(w.shape, shape) || b.data.length !== layer.outChannels) {
        throw new RangeError(
          `Cannot convert weights: "${prefix}${layer.name}" has shapes ${formatShape(w.shape)} ` +
            `and ${formatShape(b.shape)}, expected ${
              formatShape(shape)
            } and [${layer.outChannels}]`,
        );
      }
      params.set(layer.name, { weight: oihwToHwio(w), bias: tf.tensor1d(b.data) });
    }
  } catch (e) {
    disposeNetworkParams(params);
    throw e;
  }
  return params;
}

/** Disposes every tensor of a network's parameters. */
export function disposeNetworkParams(params: NetworkParams): void {
  for (const p of params.values()) {
    p.weight.dispose();
    p.bias.dispose();
  }
}

/** Subtracts the ImageNet mean and divides by its std per channel (NHWC, RGB in [0, 1]). */
export function normalizeImagenet(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() =>
    tf.div(tf.sub(x, tf.tensor1d([...IMAGENET_MEAN])), tf.tensor1d([...IMAGENET_STD]))
  );
}

/**
 * Bilinear resize with PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
 * semantics (half-pixel centres, edges clamped, no antialiasing), NHWC.
 */
export function resizeBilinear(x: tf.Tensor4D, size: readonly [number, number]): tf.Tensor4D {
  if (x.shape[1] === size[0] && x.shape[2] === size[1]) return tf.clone(x);
  return tf.image.resizeBilinear(x, [size[0], size[1]], false, true);
}

function padSpatial(x: tf.Tensor4D, pad: number): tf.Tensor4D {
  return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]);
}

function convLayer(
  x: tf.Tensor4D,
  layer: ConvLayer,
  p: ConvParams,
  options: ForwardOptions,
): tf.Tensor4D {
  const { stride, pad } = layer;
  let y: tf.Tensor4D;
  if (options.conv2d === undefined) {
    y = tf.fused.conv2d({
      x,
      filter: p.weight,
      strides: stride,
      pad: pad === 0 ? "valid" : pad,
      bias: p.bias,
      activation: layer.relu ? "relu" : "linear",
    });
  } else {
    y = tf.add(options.conv2d(x, p.weight, { stride, pad }), p.bias);
    if (layer.relu) y = tf.relu(y);
  }
  return options.afterConv === undefined ? y : options.afterConv(y, layer);
}

/**
 * Runs a list of layers on an NHWC input that is already normalised. Intermediate tensors
 * are not disposed: call it inside `tf.tidy` (or under a gradient tape).
 *
 * @throws {RangeError} when a convolution's parameters are missing.
 */
export function forwardLayers(
  network: Network,
  x: tf.Tensor4D,
  options: ForwardOptions = {},
): tf.Tensor4D {
  const { layers, params } = network;
  let y = x;
  for (const layer of layers) {
    switch (layer.op) {
      case "conv": {
        const p = params.get(layer.name);
        if (p === undefined) {
          throw new RangeError(`Cannot run layer ${layer.name}: it has no parameters`);
        }
        y = convLayer(y, layer, p, options);
        break;
      }
      case "avgpool":
        y = tf.avgPool(
          layer.pad > 0 ? padSpatial(y, layer.pad) : y,
          layer.kernel,
          layer.stride,
          "valid",
        );
        break;
      case "resize":
        y = (options.resize ?? resizeBilinear)(y, layer.size);
        break;
    }
  }
  return y;
}

/**
 * One network's forward pass on RGB images in [0, 1] (NHWC): ImageNet normalisation, then
 * the layers. Call it inside `tf.tidy` (or under a gradient tape).
 *
 * @throws {RangeError} when a convolution's parameters are missing.
 */
export function forwardNetwork(
  network: Network,
  x: tf.Tensor4D,
  options: ForwardOptions = {},
): tf.Tensor4D {
  return forwardLayers(network, normalizeImagenet(x), options);
}

/** Everything the map computation needs, uploaded to the tfjs backend. */
export interface EfficientAdParams {
  /** The architecture and post-processing settings. */
  readonly config: EfficientAdConfig;
  /** Teacher PDN (`teacherOutChannels` outputs). */
  readonly teacher: Network;
  /** Student PDN (twice the teacher's outputs). */
  readonly student: Network;
  /** Autoencoder (`teacherOutChannels` outputs). */
  readonly ae: Network;
  /** Teacher-output normalisation per channel; absent while anomalib's are all zero. */
  readonly meanStd?: { readonly mean: tf.Tensor1D; readonly std: tf.Tensor1D };
  /** Map-normalisation quantiles; absent when the model was never calibrated. */
  readonly quantiles?: Quantiles;
}

/**
 * Uploads a full anomalib state dict (teacher, student, autoencoder, mean_std,
 * quantiles). The caller owns the tensors (see {@linkcode disposeEfficientAdParams}).
 *
 * @throws {RangeError} when a weight is missing or has the wrong shape.
 */
export function efficientAdParams(config: EfficientAdConfig, dict: StateDict): EfficientAdParams {
  const layers = networks(config);
  const made: NetworkParams[] = [];
  const load = (name: "teacher" | "student" | "ae"): Network => {
    const params = networkParams(dict, layers[name], { prefix: `${name}.` });
    made.push(params);
    return { layers: layers[name], params };
  };
  try {
    const teacher = load("teacher");
    const student = load("student");
    const ae = load("ae");
    const quantiles = quantilesOf(dict);
    const base = { config, teacher, student, ae, ...(quantiles ? { quantiles } : {}) };
    if (!hasMeanStd(dict)) return base;
    const mean = dict.get("mean_std.mean");
    const std = dict.get("mean_std.std");
    const c = config.teacherOutChannels;
    if (mean?.data.length !== c || std?.data.length !== c) {
      throw new RangeError(`Cannot convert weights: mean_std must hold ${c} values each`);
    }
    return { ...base, meanStd: { mean: tf.tensor1d(mean.data), std: tf.tensor1d(std.data) } };
  } catch (e) {
    made.forEach(disposeNetworkParams);
    throw e;
  }
}

/** Disposes every tensor of {@linkcode efficientAdParams}. */
export function disposeEfficientAdParams(params: EfficientAdParams): void {
  disposeNetworkParams(params.teacher.params);
  disposeNetworkParams(params.student.params);
  disposeNetworkParams(params.ae.params);
  params.meanStd?.mean.dispose();
  params.meanStd?.std.dispose();
}

/**
 * The maps of a batch, NHWC. (A type alias rather than an interface, so that `tf.tidy`
 * accepts it as a tensor container.)
 */
export type MapTensors = {
  /** N x H x W x 1: 0.5 map_st + 0.5 map_ae, after quantile normalisation when set. */
  readonly anomalyMap: tf.Tensor4D;
  /** N x 1: the maximum of each anomaly map. */
  readonly predScore: tf.Tensor2D;
  /** N x H x W x 1: the student-teacher map after padding and resize, unnormalised. */
  readonly mapSt: tf.Tensor4D;
  /** N x H x W x 1: the autoencoder map after padding and resize, unnormalised. */
  readonly mapAe: tf.Tensor4D;
  /** N x h x w x C: the autoencoder's output (only with `aeOut: true`). */
  readonly aeOut?: tf.Tensor4D;
};

/** Options of {@linkcode computeMaps}. */
export interface ComputeMapsOptions {
  /** Also return the autoencoder's output. */
  readonly aeOut?: boolean;
}

/**
 * anomalib's EfficientAD inference (SPEC "Inference" steps 1-7) on RGB images in [0, 1],
 * NHWC. Intermediate tensors are disposed; the caller owns the returned ones.
 *
 * @throws {RangeError} when the input is not N x H x W x 3.
 */
export function computeMaps(
  params: EfficientAdParams,
  x: tf.Tensor4D,
  options: ComputeMapsOptions = {},
): MapTensors {
  const [n, h, w, c] = x.shape;
  if (c !== 3 || n < 1) {
    throw new RangeError(
      `Cannot compute maps: expected an N x H x W x 3 batch, got ${formatShape(x.shape)}`,
    );
  }
  const { config, quantiles, meanStd } = params;
  const channels = config.teacherOutChannels;
  return tf.tidy((): MapTensors => {
    const xn = normalizeImagenet(x);
    let t = forwardLayers(params.teacher, xn);
    if (meanStd !== undefined) t = tf.div(tf.sub(t, meanStd.mean), meanStd.std);
    const s = forwardLayers(params.student, xn);
    const a = forwardLayers(params.ae, xn);
    const sSt = tf.slice(s, [0, 0, 0, 0], [-1, -1, -1, channels]);
    const sAe = tf.slice(s, [0, 0, 0, channels], [-1, -1, -1, channels]);
    const post = (m: tf.Tensor4D) => resizeBilinear(config.padMaps ? padSpatial(m, 4) : m, [h, w]);
    const mapSt = post(tf.mean(tf.squaredDifference(t, sSt), 3, true));
    const mapAe = post(tf.mean(tf.squaredDifference(a, sAe), 3, true));
    let st: tf.Tensor4D = mapSt;
    let ae: tf.Tensor4D = mapAe;
    if (quantiles !== undefined) {
      const { qaSt, qbSt, qaAe, qbAe } = quantiles;
      // anomalib's order of operations: 0.1 * (map - qa) / (qb - qa).
      st = tf.div(tf.mul(tf.sub(mapSt, qaSt), 0.1), Math.fround(qbSt - qaSt));
      ae = tf.div(tf.mul(tf.sub(mapAe, qaAe), 0.1), Math.fround(qbAe - qaAe));
    }
    const anomalyMap: tf.Tensor4D = tf.add(tf.mul(st, 0.5), tf.mul(ae, 0.5));
    const predScore: tf.Tensor2D = tf.reshape(tf.max(anomalyMap, [1, 2, 3]), [n, 1]);
    return { anomalyMap, predScore, mapSt, mapAe, ...(options.aeOut ? { aeOut: a } : {}) };
  });
}
