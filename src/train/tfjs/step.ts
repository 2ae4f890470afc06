/**
 * One training step of EfficientAD: the losses, their gradients with respect to the
 * student's and the autoencoder's parameters, and PyTorch's Adam update (L2 weight decay
 * added to the gradient).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { assertNonNegativeInteger } from "../../core/check.ts";
import { conv2dWithGrad } from "./conv_grad.ts";
import { hasGradients } from "./gradients.ts";
import {
  computeLosses,
  type LossOptions,
  type StepImages,
  teacherTarget,
  type TrainableModel,
} from "./losses.ts";

/**
 * Whether the active backend lacks `Conv2DBackpropFilter` (tfjs's wasm backend), so that
 * training needs {@linkcode conv2dWithGrad}.
 */
export function needsConvGrad(): boolean {
  return tf.getKernel("Conv2DBackpropFilter", tf.getBackend()) === undefined;
}

/** The losses of one step as numbers. */
export interface LossValues {
  /** loss_hard + loss_penalty. */
  readonly lossSt: number;
  /** The autoencoder's loss. */
  readonly lossAe: number;
  /** The student-autoencoder loss. */
  readonly lossStae: number;
  /** The sum. */
  readonly loss: number;
}

/** The losses and gradients of one step. */
export interface LossesAndGradients {
  /** The losses before the update. */
  readonly losses: LossValues;
  /**
   * The gradient of the total loss for every trainable tensor, by state-dict name (layout
   * of the variable: HWIO weights). The caller owns the tensors (see
   * {@linkcode disposeGradients}).
   */
  readonly grads: Map<string, tf.Tensor>;
}

/** Disposes a map of gradients. */
export function disposeGradients(grads: ReadonlyMap<string, tf.Tensor>): void {
  for (const g of grads.values()) g.dispose();
}

/**
 * Computes the losses of one step and their gradients. The teacher's outputs are
 * computed first, outside the tape.
 *
 * Without `options.conv2d`, backends that lack `Conv2DBackpropFilter` get
 * {@linkcode conv2dWithGrad}.
 *
 * @throws {Error} when tfjs's gradients are not registered (see `ensureGradients`).
 */
export function lossesAndGradients(
  model: TrainableModel,
  images: StepImages,
  options: LossOptions = {},
): LossesAndGradients {
  if (!hasGradients()) {
    throw new Error(
      "Cannot compute gradients: tfjs's gradient functions are not registered " +
        "(await ensureGradients() first)",
    );
  }
  if (options.conv2d === undefined && needsConvGrad()) {
    options = { ...options, conv2d: conv2dWithGrad };
  }
  const targets = {
    image: teacherTarget(model, images.image),
    augmented: teacherTarget(model, images.augmented),
  };
  try {
    const names = [...model.variables.keys()];
    const vars = names.map((n) => model.variables.get(n)!);
    let parts: number[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const l = computeLosses(model, images, targets, options);
      parts = [l.lossSt, l.lossAe, l.lossStae].map((t) => t.dataSync()[0]!);
      return l.loss;
    }, vars);
    const loss = value.dataSync()[0]!;
    value.dispose();
    const out = new Map<string, tf.Tensor>();
    names.forEach((n, i) => {
      const g = grads[vars[i]!.name];
      if (g !== undefined) out.set(n, g);
    });
    const [lossSt = NaN, lossAe = NaN, lossStae = NaN] = parts;
    return { losses: { lossSt, lossAe, lossStae, loss }, grads: out };
  } finally {
    targets.image.dispose();
    targets.augmented.dispose();
  }
}

/** Settings of {@linkcode Adam} (PyTorch's names and defaults of the recipe). */
export interface AdamOptions {
  /** Learning rate; default 1e-4. */
  readonly lr?: number;
  /** L2 weight decay added to the gradient; default 1e-5. */
  readonly weightDecay?: number;
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
}

/**
 * PyTorch's `torch.optim.Adam` (not AdamW): g += wd p; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * The learning rate may be changed between steps (`lr`), as the recipe's decay does.
 */
export class Adam {
  /** The current learning rate. */
  lr: number;
  /** L2 weight decay. */
  readonly weightDecay: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator epsilon. */
  readonly eps: number;
  #step = 0;
  readonly #m = new Map<string, tf.Tensor>();
  readonly #v = new Map<string, tf.Tensor>();

  /** Makes an optimizer with no state. */
  constructor(options: AdamOptions = {}) {
    this.lr = options.lr ?? 1e-4;
    this.weightDecay = options.weightDecay ?? 1e-5;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
  }

  /** How many steps were taken. */
  get steps(): number {
    return this.#step;
  }

  /**
   * Updates each variable that has a gradient, in place.
   *
   * @throws {RangeError} when a gradient names no variable.
   */
  step(
    variables: ReadonlyMap<string, tf.Variable>,
    grads: ReadonlyMap<string, tf.Tensor>,
  ): void {
    this.#step++;
    const t = this.#step;
    const bc1 = 1 - this.beta1 ** t;
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    const stepSize = this.lr / bc1;
    for (const [name, grad] of grads) {
      const p = variables.get(name);
      if (p === undefined) throw new RangeError(`Cannot update ${name}: no such variable`);
      const [m, v] = tf.tidy(() => {
        const g = this.weightDecay !== 0 ? tf.add(grad, tf.mul(p, this.weightDecay)) : grad;
        const m0 = this.#m.get(name);
        const v0 = this.#v.get(name);
        const m = m0 === undefined
          ? tf.mul(g, 1 - this.beta1)
          : tf.add(tf.mul(m0, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = v0 === undefined
          ? tf.mul(tf.square(g), 1 - this.beta2)
          : tf.add(tf.mul(v0, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), this.eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
        return [m, v];
      });
      this.#m.get(name)?.dispose();
      this.#v.get(name)?.dispose();
      this.#m.set(name, m);
      this.#v.set(name, v);
    }
  }

  /**
   * The state: steps taken and copies of the moments by variable name (the variables'
   * layout). The caller owns the tensors.
   */
  state(): { steps: number; m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor> } {
    const copy = (from: Map<string, tf.Tensor>) =>
      new Map([...from].map(([k, t]) => [k, tf.clone(t)] as const));
    return { steps: this.#step, m: copy(this.#m), v: copy(this.#v) };
  }

  /**
   * Replaces the state (for resuming); takes ownership of the tensors.
   *
   * @throws {RangeError} when `steps` is negative or not an integer.
   */
  load(steps: number, m: ReadonlyMap<string, tf.Tensor>, v: ReadonlyMap<string, tf.Tensor>): void {
    assertNonNegativeInteger(steps, "steps", "Cannot load Adam state");
    this.dispose();
    this.#step = steps;
    for (const [k, t] of m) this.#m.set(k, t);
    for (const [k, t] of v) this.#v.set(k, t);
  }

  /** Disposes the optimizer's state. */
  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }
}
