/**
 * The training step on ONNX Runtime: {@linkcode TrainStep} over {@linkcode OnnxTrainer}
 * (the whole step, hand-derived backward and Adam included, as one ONNX graph). About 2 s
 * per EfficientAD-S step at 256x256 on 2 CPU cores, against 27-45 s for TensorFlow.js on
 * wasm; this is the default training engine.
 *
 * @module
 */
import type { Tensor } from "../../core/tensor.ts";
import { formatShape } from "../../core/tensor.ts";
import type { StateDict } from "../../model/state_dict.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import {
  createSession,
  type ExecutionProvider,
  type RuntimeSession,
} from "../../infer/onnx/session.ts";
import { createOnnxEngine } from "../../infer/onnx/engine.ts";
import type { InferenceEngine } from "../../infer/engine.ts";
import { augmentImage } from "../augment.ts";
import { deriveSeed, SeededRandom } from "../data.ts";
import type {
  StepLosses,
  TeacherNorm,
  TrainBatch,
  TrainSnapshot,
  TrainStep,
  TrainStepFactory,
  TrainStepInit,
} from "../loop.ts";
import type { RawMaps } from "../../model/calibration.ts";
import { OnnxTrainer } from "./trainer.ts";
import { buildTeacherGraph } from "./teacher_graph.ts";
import type { Logger } from "../../core/log.ts";

/** Sub-stream of the run seed used for the dropout masks. */
const DROPOUT_STREAM = 0xd0;

/** Options of {@linkcode onnxTrainStepFactory}. */
export interface OnnxTrainStepOptions {
  /** Dropout rate of the autoencoder's decoder. Default 0.2, as anomalib. */
  readonly aeDropout?: number;
  /** ONNX Runtime intra-op threads. Default: all cores. */
  readonly threads?: number;
  /**
   * Where the step, the teacher and the validation maps run, in order of preference
   * (`webgpu`: onnxruntime-web on Deno's adapter); CPU last. Default `["cpu"]`.
   */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** Where the provider in use is logged. */
  readonly logger?: Logger;
}

/** NCHW (1 x 3 x H x W) to interleaved RGB, and back. */
function toHwc(t: Tensor): Float32Array {
  const [, c = 3, h = 0, w = 0] = t.shape;
  const plane = h * w;
  const out = new Float32Array(plane * c);
  for (let k = 0; k < c; k++) {
    for (let p = 0; p < plane; p++) out[p * c + k] = t.data[k * plane + p]!;
  }
  return out;
}

function fromHwc(hwc: Float32Array, shape: readonly number[]): Tensor {
  const [, c = 3, h = 0, w = 0] = shape;
  const plane = h * w;
  const data = new Float32Array(plane * c);
  for (let k = 0; k < c; k++) {
    for (let p = 0; p < plane; p++) data[k * plane + p] = hwc[p * c + k]!;
  }
  return { shape: [...shape], data };
}

class OnnxTrainStep implements TrainStep {
  #init: TrainStepInit;
  #options: OnnxTrainStepOptions;
  #rawTeacher: RuntimeSession | undefined;
  #norm: TeacherNorm | undefined;
  #trainer: OnnxTrainer | undefined;
  #params: StateDict;
  #random: SeededRandom;
  #engine: { engine: InferenceEngine; steps: number } | undefined;

  constructor(init: TrainStepInit, options: OnnxTrainStepOptions) {
    this.#init = init;
    this.#options = options;
    this.#params = init.params;
    this.#random = init.random !== undefined
      ? SeededRandom.fromState(init.random)
      : new SeededRandom(deriveSeed(init.seed, DROPOUT_STREAM));
  }

  async teacherFeatures(image: Tensor): Promise<Tensor> {
    this.#rawTeacher ??= (await createSession(
      buildTeacherGraph(this.#init.config, this.#init.teacher),
      { name: "teacher (statistics)", ...this.#threads(), ...this.#providers() },
    )).session;
    const out = await this.#rawTeacher.run({
      input: this.#rawTeacher.tensor(image.data, image.shape),
    });
    const t = out["teacher"];
    if (t === undefined) throw new Error("Cannot compute teacher features: no output");
    return { shape: [...t.dims], data: t.data as Float32Array };
  }

  setTeacherNorm(norm: TeacherNorm): void {
    if (this.#trainer !== undefined) {
      throw new Error("Cannot set the teacher normalisation after training started");
    }
    this.#norm = norm;
  }

  async step(batch: TrainBatch): Promise<StepLosses> {
    if (batch.image.shape.length !== 4) {
      throw new RangeError(`Cannot train on shape ${formatShape(batch.image.shape)}: need NCHW`);
    }
    const trainer = this.#trainer ?? await this.#createTrainer(batch.penalty !== undefined);
    const augmented = fromHwc(
      augmentImage(toHwc(batch.image), batch.augmentation),
      batch.image.shape,
    );
    const l = await trainer.trainStep(
      { x: batch.image, augmented, ...(batch.penalty ? { penalty: batch.penalty } : {}) },
      batch.lr,
    );
    return { lossSt: l.hard + l.penalty, lossAe: l.ae, lossStae: l.stae, loss: l.total };
  }

  async maps(image: Tensor): Promise<RawMaps> {
    const steps = this.#trainer?.steps ?? -1;
    if (this.#engine?.steps !== steps) {
      await this.#engine?.engine[Symbol.asyncDispose]();
      this.#engine = {
        engine: await createOnnxEngine(this.#model(), {
          ...this.#intraOp(),
          ...this.#providers(),
        }),
        steps,
      };
    }
    const out = await this.#engine.engine.run(image);
    if (out.mapSt === undefined || out.mapAe === undefined) {
      throw new Error("Cannot compute maps: the engine returned no raw maps");
    }
    return { st: out.mapSt, ae: out.mapAe };
  }

  snapshot(): Promise<TrainSnapshot> {
    if (this.#trainer === undefined) {
      const o = this.#init.optimizer;
      return Promise.resolve({
        params: this.#params,
        optimizer: o ?? { steps: 0, m: new Map(), v: new Map() },
        random: this.#random.state,
      });
    }
    const adam = this.#trainer.adamState();
    return Promise.resolve({
      params: this.#trainer.parameters(),
      optimizer: { steps: adam.step, m: adam.m, v: adam.v },
      random: this.#random.state,
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#engine?.engine[Symbol.asyncDispose]();
    await this.#trainer?.[Symbol.asyncDispose]();
    await this.#rawTeacher?.release();
  }

  #threads(): { intraOpThreads?: number } {
    return this.#options.threads !== undefined ? { intraOpThreads: this.#options.threads } : {};
  }

  #intraOp(): { intraOpThreads?: number } {
    return this.#threads();
  }

  #providers(): { executionProviders?: readonly ExecutionProvider[]; logger?: Logger } {
    const o = this.#options;
    return {
      ...(o.executionProviders ? { executionProviders: o.executionProviders } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
    };
  }

  /** Teacher, current student and autoencoder, and mean/std as one state dict. */
  #stateDict(): StateDict {
    const dict: StateDict = new Map();
    for (const [k, v] of this.#init.teacher) {
      dict.set(k.startsWith("teacher.") ? k : `teacher.${k}`, v);
    }
    for (const [k, v] of this.#trainer?.parameters() ?? this.#params) dict.set(k, v);
    const norm = this.#norm;
    if (norm !== undefined) {
      const c = norm.mean.length;
      dict.set("mean_std.mean", { shape: [1, c, 1, 1], data: Float32Array.from(norm.mean) });
      dict.set("mean_std.std", { shape: [1, c, 1, 1], data: Float32Array.from(norm.std) });
    }
    return dict;
  }

  #model(): EfficientAdModel {
    return {
      config: this.#init.config,
      stateDict: this.#stateDict(),
      provenance: { version: "training", source: "efficientad-edge train" },
      resize: "bilinear",
    };
  }

  async #createTrainer(penalty: boolean): Promise<OnnxTrainer> {
    if (this.#norm === undefined) {
      throw new Error("Cannot train: the teacher normalisation (mean/std) is not set");
    }
    const o = this.#init.optimizer;
    this.#trainer = await OnnxTrainer.create({
      config: this.#init.config,
      stateDict: this.#stateDict(),
      penalty,
      dropout: this.#options.aeDropout ?? 0.2,
      random: () => this.#random.next(),
      ...this.#providers(),
      ...this.#threads().intraOpThreads !== undefined ? { threads: this.#options.threads! } : {},
      ...(o && o.steps > 0 ? { resume: { step: o.steps, m: new Map(o.m), v: new Map(o.v) } } : {}),
    });
    return this.#trainer;
  }
}

/** A {@linkcode TrainStepFactory} running the whole step in ONNX Runtime. */
export function onnxTrainStepFactory(options: OnnxTrainStepOptions = {}): TrainStepFactory {
  return (init: TrainStepInit): Promise<TrainStep> =>
    Promise.resolve(new OnnxTrainStep(init, options));
}
