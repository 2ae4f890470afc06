/**
 * Drives EfficientAD training steps on ONNX Runtime: the frozen teacher's graph for t(x)
 * and t(x_aug), then the whole-step graph of {@linkcode buildTrainStepGraph} (student and
 * autoencoder forward, hand-derived backward, Adam), feeding the updated parameters and
 * Adam state back in at every step.
 *
 * ```ts
 * import type { Tensor } from "../../core/tensor.ts";
 * import type { EfficientAdConfig } from "../../model/config.ts";
 * import type { StateDict } from "../../model/state_dict.ts";
 * import { OnnxTrainer } from "./trainer.ts";
 *
 * async function oneStep(
 *   config: EfficientAdConfig,
 *   stateDict: StateDict,
 *   images: { x: Tensor; penalty: Tensor; augmented: Tensor },
 * ): Promise<StateDict> {
 *   await using trainer = await OnnxTrainer.create({ config, stateDict });
 *   const losses = await trainer.trainStep(images, 1e-4);
 *   console.log(losses.total);
 *   return trainer.parameters(); // student.* and ae.* after the step
 * }
 * ```
 *
 * @module
 */
import { item, stack, type Tensor } from "../../core/tensor.ts";
import type { Logger } from "../../core/log.ts";
import type { EfficientAdConfig } from "../../model/config.ts";
import type { StateDict } from "../../model/state_dict.ts";
import {
  createSession,
  type ExecutionProvider,
  type OpenedSession,
  type RuntimeSession,
  type RuntimeTensor,
} from "../../infer/onnx/session.ts";
import {
  type AdamConstants,
  adamNames,
  adamScalars,
  aeParameters,
  buildTrainStepGraph,
  dropoutName,
  dropoutShapes,
  type ParameterInfo,
  studentParameters,
} from "./train_step_graph.ts";
import { buildTeacherGraph } from "./teacher_graph.ts";

/** Options of {@linkcode OnnxTrainer.create}. */
export interface OnnxTrainerOptions {
  readonly config: EfficientAdConfig;
  /**
   * Teacher weights (frozen), `mean_std.*` when already computed, and the starting
   * student and autoencoder weights. Not modified.
   */
  readonly stateDict: StateDict;
  /** ONNX Runtime intra-op threads. Default: the logical CPU count (createSession's default). */
  readonly threads?: number;
  /**
   * Where the teacher and step graphs run, in order of preference (`webgpu`: onnxruntime-web
   * on Deno's adapter); the CPU is always the last resort. Default `["cpu"]`.
   */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** Where the provider in use (and any fallback) is logged. */
  readonly logger?: Logger;
  /** Decoder dropout rate in training (anomalib: 0.2). 0 turns dropout off. Default 0.2. */
  readonly dropout?: number;
  /** Uniform [0, 1) source for the dropout masks. Default `Math.random`. */
  readonly random?: () => number;
  /** Adam constants; defaults are anomalib's (weight decay 1e-5). */
  readonly adam?: AdamConstants;
  /** Adam state to continue from (a checkpoint), with the number of steps already taken. */
  readonly resume?: { readonly step: number; readonly m: StateDict; readonly v: StateDict };
  /** Whether steps carry a penalty image (the penalty loss is in the graph). Default true. */
  readonly penalty?: boolean;
}

/** The losses of one {@linkcode OnnxTrainer.trainStep}, before the update (the graph's outputs). */
export interface OnnxTrainerLosses {
  readonly hard: number;
  readonly penalty: number;
  readonly ae: number;
  readonly stae: number;
  readonly total: number;
}

/**
 * The images of one ONNX training step, each 3 x H x W or 1 x 3 x H x W, RGB in [0, 1]
 * (core tensors; the tfjs trainer's are `StepImages` in `tfjs/losses.ts`).
 */
export interface OnnxStepImages {
  readonly x: Tensor;
  /** Required when the trainer was made with `penalty` (the default). */
  readonly penalty?: Tensor;
  readonly augmented: Tensor;
}

/** Runs training steps; holds the parameters and Adam state between them. */
export class OnnxTrainer implements AsyncDisposable {
  #teacher: RuntimeSession;
  #step: RuntimeSession;
  #params: readonly ParameterInfo[];
  #state = new Map<string, RuntimeTensor>();
  #steps: number;
  #options: OnnxTrainerOptions;
  /** The execution provider of the step graph (the teacher's may differ after a fallback). */
  readonly provider: ExecutionProvider;

  private constructor(
    teacher: RuntimeSession,
    step: OpenedSession,
    options: OnnxTrainerOptions,
  ) {
    this.#teacher = teacher;
    this.#step = step.session;
    this.provider = step.provider;
    this.#options = options;
    const toOrt = (t: Tensor, copy = false) =>
      this.#step.tensor(copy ? t.data.slice() : t.data, t.shape);
    const zeros = (shape: readonly number[]) =>
      this.#step.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
    const { config, stateDict } = options;
    this.#params = [...studentParameters(config), ...aeParameters(config)];
    this.#steps = options.resume?.step ?? 0;
    for (const p of this.#params) {
      const names = adamNames(p.name);
      this.#state.set(p.name, toOrt(required(stateDict, p.name), true));
      const m = options.resume?.m.get(p.name);
      const v = options.resume?.v.get(p.name);
      this.#state.set(names.m, m ? toOrt(m, true) : zeros(p.shape));
      this.#state.set(names.v, v ? toOrt(v, true) : zeros(p.shape));
    }
  }

  /**
   * Builds both graphs and opens their sessions.
   *
   * @throws {RangeError} when a teacher, student or autoencoder weight is missing.
   */
  static async create(options: OnnxTrainerOptions): Promise<OnnxTrainer> {
    const { config, stateDict } = options;
    const threads = {
      ...(options.threads === undefined ? {} : { intraOpThreads: options.threads }),
      ...(options.executionProviders ? { executionProviders: options.executionProviders } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    };
    const teacher = await createSession(buildTeacherGraph(config, stateDict), {
      ...threads,
      name: "teacher (training)",
    });
    try {
      const graph = buildTrainStepGraph(config, {
        penalty: options.penalty ?? true,
        stae: true,
        autoencoder: { dropout: (options.dropout ?? 0.2) > 0 },
        adam: options.adam ?? {},
      });
      const step = await createSession(graph, { ...threads, name: "training step" });
      return new OnnxTrainer(teacher.session, step, options);
    } catch (e) {
      await teacher.session.release();
      throw e;
    }
  }

  /** Steps taken so far (including those of a resumed run). */
  get steps(): number {
    return this.#steps;
  }

  /** One training step at learning rate `lr`; returns the losses before the update. */
  async trainStep(images: OnnxStepImages, lr: number): Promise<OnnxTrainerLosses> {
    const { config } = this.#options;
    const x = batchOfOne(images.x);
    const augmented = batchOfOne(images.augmented);
    const both = stack([item(x, 0), item(augmented, 0)]);
    const teacherIn = this.#teacher.tensor(both.data, both.shape);
    const t = (await this.#teacher.run({ input: teacherIn }))["teacher"];
    if (t === undefined) throw new Error("teacher graph gave no output");
    const tData = t.data as Float32Array;
    const half = tData.length / 2;
    const tShape = [1, ...t.dims.slice(1)];
    const step = this.#steps + 1;
    const { stepSize, biasCorrection2Sqrt } = adamScalars(lr, step, this.#options.adam);
    const session = this.#step;
    const toOrt = (t: Tensor) => session.tensor(t.data, t.shape);
    const feeds: Record<string, RuntimeTensor> = {
      input: toOrt(x),
      teacher: session.tensor(tData.subarray(0, half), tShape),
      teacher_augmented: session.tensor(tData.subarray(half), tShape),
      ...(this.#options.penalty ?? true
        ? { penalty: toOrt(batchOfOne(requiredPenalty(images.penalty))) }
        : {}),
      augmented: toOrt(augmented),
      "adam.step_size": session.tensor(Float32Array.of(stepSize), []),
      "adam.bias_correction2_sqrt": session.tensor(Float32Array.of(biasCorrection2Sqrt), []),
    };
    for (const [name, value] of this.#state) feeds[name] = value;
    const rate = this.#options.dropout ?? 0.2;
    if (rate > 0) {
      const random = this.#options.random ?? Math.random;
      const keep = 1 / (1 - rate);
      for (const [layer, shape] of dropoutShapes(config)) {
        const mask = new Float32Array(shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < mask.length; i++) mask[i] = random() < rate ? 0 : keep;
        feeds[dropoutName(layer)] = session.tensor(mask, shape);
      }
    }
    const out = await this.#step.run(feeds);
    for (const p of this.#params) {
      const names = adamNames(p.name);
      for (
        const [to, from] of [[p.name, names.nextParam], [names.m, names.nextM], [
          names.v,
          names.nextV,
        ]] as const
      ) {
        const v = out[from];
        if (v === undefined) throw new Error(`training step gave no ${from}`);
        this.#state.set(to, v);
      }
    }
    this.#steps = step;
    const scalar = (k: string) => (out[k]?.data as Float32Array | undefined)?.[0] ?? NaN;
    const losses = {
      hard: scalar("loss_hard"),
      penalty: (this.#options.penalty ?? true) ? scalar("loss_penalty") : 0,
      ae: scalar("loss_ae"),
      stae: scalar("loss_stae"),
    };
    return { ...losses, total: losses.hard + losses.penalty + losses.ae + losses.stae };
  }

  /** The graph-input names of the step (tests, diagnostics). */
  get inputNames(): readonly string[] {
    return this.#step.inputNames;
  }

  /** The current student and autoencoder weights (copies), by state-dict name. */
  parameters(): StateDict {
    return this.#collect((p) => p.name);
  }

  /** The Adam state to checkpoint: first and second moments by parameter name. */
  adamState(): { step: number; m: StateDict; v: StateDict } {
    return {
      step: this.#steps,
      m: this.#collect((p) => adamNames(p.name).m),
      v: this.#collect((p) => adamNames(p.name).v),
    };
  }

  /** Releases both sessions. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#step.release();
    await this.#teacher.release();
  }

  #collect(key: (p: ParameterInfo) => string): StateDict {
    const out: StateDict = new Map();
    for (const p of this.#params) {
      const v = this.#state.get(key(p));
      if (v === undefined) throw new Error(`no value for ${key(p)}`);
      out.set(p.name, { shape: [...p.shape], data: (v.data as Float32Array).slice() });
    }
    return out;
  }
}

function required(dict: StateDict, key: string): Tensor {
  const t = dict.get(key);
  if (t === undefined) throw new RangeError(`Cannot train: missing weight "${key}"`);
  return t;
}

function batchOfOne(t: Tensor): Tensor {
  return t.shape.length === 3 ? { shape: [1, ...t.shape], data: t.data } : t;
}

function requiredPenalty(t: Tensor | undefined): Tensor {
  if (t === undefined) throw new RangeError("Cannot train: this trainer needs a penalty image");
  return t;
}
