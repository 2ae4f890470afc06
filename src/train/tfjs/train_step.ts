/**
 * The training loop's {@linkcode TrainStep} on TensorFlow.js: the portable backend (wasm
 * here, tfjs-node where its native binding is installed), built from the parity-tested
 * pieces of this folder: {@linkcode augmentImage}, {@linkcode lossesAndGradients} and
 * {@linkcode Adam}.
 *
 * Layouts: the loop's tensors are NCHW with PyTorch's OIHW weights; inside, tfjs is NHWC
 * with HWIO weights. Snapshots and the optimizer state are converted back to PyTorch's
 * layout, so checkpoints do not depend on the backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { formatShape, type Tensor } from "../../core/tensor.ts";
import { networks } from "../../model/architecture.ts";
import { fnv1a32 } from "../../model/synthetic.ts";
import type { StateDict } from "../../model/state_dict.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import {
  computeMaps,
  disposeNetworkParams,
  type EfficientAdParams,
  forwardNetwork,
  type Network,
  networkParams,
  oihwToHwio,
} from "../../infer/tfjs/networks.ts";
import { augmentImage } from "../augment.ts";
import { ensureGradients } from "./gradients.ts";
import { disposeTrainableModel, type TrainableModel, trainableModel } from "./losses.ts";
import type {
  OptimizerState,
  StepLosses,
  TeacherNorm,
  TrainBatch,
  TrainSnapshot,
  TrainStep,
  TrainStepFactory,
  TrainStepInit,
} from "../loop.ts";
import type { RawMaps } from "../../model/calibration.ts";
import { Adam, disposeGradients, lossesAndGradients } from "./step.ts";

/** Options of {@linkcode tfjsTrainStepFactory}. */
export interface TfjsTrainStepOptions {
  /** Dropout after the decoder's deconv1-6 while training; default 0.2 (anomalib's). */
  readonly aeDropout?: number;
  /** Adam's L2 weight decay; default 1e-5. */
  readonly weightDecay?: number;
}

/** NCHW data to an NHWC tfjs tensor. */
function toNhwc(t: Tensor): tf.Tensor4D {
  const [n, c, h, w] = t.shape;
  if (t.shape.length !== 4 || n === undefined || c === undefined || h === undefined) {
    throw new RangeError(`Cannot train on a tensor of shape ${formatShape(t.shape)}: need NCHW`);
  }
  return tf.tidy(() => tf.transpose(tf.tensor4d(t.data, [n, c, h, w!]), [0, 2, 3, 1]));
}

/** An NHWC tfjs tensor to NCHW data. */
function toNchw(t: tf.Tensor4D): Tensor {
  const [n, h, w, c] = t.shape;
  const data = tf.tidy(() => tf.transpose(t, [0, 3, 1, 2]).dataSync() as Float32Array);
  return { shape: [n, c, h, w], data: Float32Array.from(data) };
}

/** A variable-layout tensor (HWIO weights) to PyTorch's layout (OIHW). */
function toTorch(t: tf.Tensor): Tensor {
  if (t.rank !== 4) return { shape: [...t.shape], data: Float32Array.from(t.dataSync()) };
  const [kh, kw, i, o] = t.shape as [number, number, number, number];
  const data = tf.tidy(() => tf.transpose(t, [3, 2, 0, 1]).dataSync() as Float32Array);
  return { shape: [o, i, kh, kw], data: Float32Array.from(data) };
}

/** PyTorch's layout to the variables' (HWIO weights). */
function fromTorch(t: Tensor): tf.Tensor {
  return t.shape.length === 4 ? oihwToHwio(t) : tf.tensor(t.data, [...t.shape]);
}

class TfjsTrainStep implements TrainStep {
  #model: TrainableModel;
  #norm: { mean: tf.Tensor1D; std: tf.Tensor1D };
  readonly #teacherParams: Network["params"];
  readonly #adam: Adam;
  readonly #seed: number;
  readonly #dropout: number;
  #random: number;

  constructor(init: TrainStepInit, options: TfjsTrainStepOptions) {
    const { config } = init;
    const layers = networks(config);
    const c = config.teacherOutChannels;
    this.#teacherParams = networkParams(init.teacher, layers.teacher, { prefix: "teacher." });
    const student = networkParams(init.params, layers.student, { prefix: "student." });
    const ae = networkParams(init.params, layers.ae, { prefix: "ae." });
    this.#norm = { mean: tf.zeros([c]), std: tf.ones([c]) };
    try {
      this.#model = trainableModel({
        config,
        teacher: { layers: layers.teacher, params: this.#teacherParams },
        student: { layers: layers.student, params: student },
        ae: { layers: layers.ae, params: ae },
        meanStd: this.#norm,
      });
    } finally {
      disposeNetworkParams(student);
      disposeNetworkParams(ae);
    }
    this.#adam = new Adam({ weightDecay: options.weightDecay ?? 1e-5 });
    if (init.optimizer !== undefined) this.#loadOptimizer(init.optimizer);
    this.#seed = init.seed;
    this.#dropout = options.aeDropout ?? 0.2;
    this.#random = init.random ?? 0;
  }

  #loadOptimizer(state: OptimizerState): void {
    const convert = (from: ReadonlyMap<string, Tensor>) =>
      new Map([...from].map(([k, t]) => [k, fromTorch(t)] as const));
    this.#adam.load(state.steps, convert(state.m), convert(state.v));
  }

  teacherFeatures(image: Tensor): Promise<Tensor> {
    const x = toNhwc(image);
    try {
      const t = tf.tidy(() => forwardNetwork(this.#model.teacher, x));
      try {
        return Promise.resolve(toNchw(t));
      } finally {
        t.dispose();
      }
    } finally {
      x.dispose();
    }
  }

  setTeacherNorm(norm: TeacherNorm): void {
    const old = this.#norm;
    this.#norm = { mean: tf.tensor1d(norm.mean), std: tf.tensor1d(norm.std) };
    this.#model = { ...this.#model, meanStd: this.#norm };
    old.mean.dispose();
    old.std.dispose();
  }

  step(batch: TrainBatch): Promise<StepLosses> {
    const image = toNhwc(batch.image);
    const [, h, w] = image.shape;
    const hwc = image.dataSync() as Float32Array;
    const augmented = tf.tensor4d(augmentImage(hwc, batch.augmentation), [1, h, w, 3]);
    const penalty = batch.penalty === undefined ? undefined : toNhwc(batch.penalty);
    try {
      const dropoutSeed = fnv1a32(`${this.#seed}/${this.#random}`);
      this.#random++;
      const { losses, grads } = lossesAndGradients(
        this.#model,
        { image, augmented, ...(penalty ? { penalty } : {}) },
        { aeDropout: this.#dropout, dropoutSeed },
      );
      this.#adam.lr = batch.lr;
      try {
        this.#adam.step(this.#model.variables, grads);
      } finally {
        disposeGradients(grads);
      }
      return Promise.resolve(losses);
    } finally {
      image.dispose();
      augmented.dispose();
      penalty?.dispose();
    }
  }

  maps(image: Tensor): Promise<RawMaps> {
    const x = toNhwc(image);
    const params: EfficientAdParams = {
      config: this.#model.config,
      teacher: this.#model.teacher,
      student: this.#model.student,
      ae: this.#model.ae,
      meanStd: this.#norm,
    };
    try {
      const maps = computeMaps(params, x);
      try {
        return Promise.resolve({ st: toNchw(maps.mapSt), ae: toNchw(maps.mapAe) });
      } finally {
        tf.dispose([maps.anomalyMap, maps.predScore, maps.mapSt, maps.mapAe]);
      }
    } finally {
      x.dispose();
    }
  }

  snapshot(): Promise<TrainSnapshot> {
    const params: StateDict = new Map();
    for (const [k, v] of this.#model.variables) params.set(k, toTorch(v));
    const state = this.#adam.state();
    const convert = (from: Map<string, tf.Tensor>) => {
      const out = new Map<string, Tensor>();
      for (const [k, t] of from) {
        out.set(k, toTorch(t));
        t.dispose();
      }
      return out;
    };
    const optimizer: OptimizerState = {
      steps: state.steps,
      m: convert(state.m),
      v: convert(state.v),
    };
    return Promise.resolve({ params, optimizer, random: this.#random });
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#adam.dispose();
    disposeTrainableModel(this.#model);
    disposeNetworkParams(this.#teacherParams);
    this.#norm.mean.dispose();
    this.#norm.std.dispose();
    return Promise.resolve();
  }
}

/**
 * A {@linkcode TrainStepFactory} on TensorFlow.js: selects the backend, registers the
 * gradient functions, and builds the step (student and autoencoder as variables, the
 * teacher frozen). Until `setTeacherNorm`, the teacher's outputs are not normalised.
 */
export function tfjsTrainStepFactory(options: TfjsTrainStepOptions = {}): TrainStepFactory {
  return async (init: TrainStepInit): Promise<TrainStep> => {
    await selectTfjsBackend();
    await ensureGradients();
    return new TfjsTrainStep(init, options);
  };
}
