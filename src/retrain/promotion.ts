/**
 * Promotion and rollback of a key's models: a trained candidate is added to the
 * {@linkcode ModelRegistry}, validated against the serving model on the held-out normal
 * frames and the frames an operator marked anomalous ({@linkcode validateCandidate}), then
 * promoted (the registry first, then the injected `swap` serves a fresh engine; a failing
 * swap rolls the registry back) or refused with the reason. A rollback makes the registry
 * serve the previous version and swaps a fresh engine of it in.
 *
 * **Crash safety.** The registry switches its `current` pointer atomically and only after
 * the version loaded, so a crash at any point leaves the serving model intact.
 *
 * @example
 * ```ts
 * import { Promoter, type SwapHook } from "./promotion.ts";
 * import type { FrameStore } from "./frame_store.ts";
 * import type { ModelRegistry } from "./registry.ts";
 * import type { TrainingRun } from "./training_data.ts";
 * import type { PromotionMargins } from "./validate.ts";
 *
 * async function decide(
 *   registry: ModelRegistry,
 *   store: FrameStore,
 *   swap: SwapHook,
 *   run: TrainingRun,
 *   margins: PromotionMargins,
 * ): Promise<void> {
 *   const promoter = new Promoter({ registry, store, margins, swap });
 *   const outcome = await promoter.validate(run.outDir, run.holdout, { reason: "drift: ..." });
 *   if (outcome.kind === "refused") console.log(outcome.reason);
 * }
 * ```
 *
 * @module
 */
import type { Frame } from "../core/frame.ts";
import type { ValidationFigures } from "../core/retrain_event.ts";
import type { Tensor } from "../core/tensor.ts";
import { imageToTensor } from "../image/decode.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { createOnnxEngine } from "../infer/onnx/engine.ts";
import type { EfficientAdModel, Thresholds } from "../model/model.ts";
import { readProjectModel } from "../model/project_format.ts";
import { errorMessage } from "../core/errors.ts";
import type { FrameStore } from "./frame_store.ts";
import type { ModelRegistry } from "./registry.ts";
import { type PromotionMargins, validateCandidate } from "./validate.ts";

/**
 * The model an engine serves, as handed to `swap`: the same shape as the inference stage's
 * `ModelInfo`, so `InferenceStage.setModel` fits (this folder does not import `src/batch`).
 */
export interface ServedModel {
  /** The registry's version id. */
  readonly version: string;
  /** The model's thresholds. */
  readonly thresholds?: Thresholds;
}

/** Makes an engine for a model (validation and swaps). */
export type EngineFactory = (model: EfficientAdModel) => Promise<InferenceEngine>;

/** Serves a model; takes ownership of `engine`. */
export type SwapHook = (engine: InferenceEngine, model: ServedModel) => void | Promise<void>;

/** Options of {@linkcode Promoter}. */
export interface PromoterOptions {
  /** The key's model registry. */
  readonly registry: ModelRegistry;
  /** The key's frame store (the frames marked anomalous are read from it). */
  readonly store: FrameStore;
  /** The promotion margins (`retrain.promotion.margins`, resolved). */
  readonly margins: PromotionMargins;
  /** Engine factory. Default {@linkcode createOnnxEngine} with its defaults. */
  readonly createEngine?: EngineFactory;
  /**
   * Serves a promoted (or rolled-back-to) model; takes ownership of the engine. Without it
   * the engine is disposed at once (the registry still records the change).
   */
  readonly swap?: SwapHook;
}

/** Options of {@linkcode Promoter.validate}. */
export interface ValidateOptions {
  /** What started the training, in words: the start of the registry's promotion note. */
  readonly reason: string;
  /** Called once the candidate is in the registry, with its version. */
  readonly onCandidate?: (version: string) => void;
  /** Aborting it stops the validation (the promotion does not happen then). */
  readonly signal?: AbortSignal;
}

/** What {@linkcode Promoter.validate} decided. */
export type PromotionOutcome =
  | {
    readonly kind: "promoted";
    /** The version serving now. */
    readonly version: string;
    /** The version that served before, if any. */
    readonly from?: string;
    /** Why, in words. */
    readonly reason: string;
    readonly validation: ValidationFigures;
  }
  | {
    readonly kind: "refused";
    /** The refused candidate's version (it stays in the registry, not serving). */
    readonly candidate: string;
    /** Why, in words. */
    readonly reason: string;
    readonly validation: ValidationFigures;
  };

/** A frame as a 1 x 3 x H x W tensor in [0, 1]. */
function frameTensor(frame: Frame): Tensor {
  return imageToTensor({ width: frame.width, height: frame.height, data: frame.rgb });
}

async function disposeQuietly(engine: InferenceEngine): Promise<void> {
  try {
    await engine[Symbol.asyncDispose]();
  } catch {
    // a failing release must not hide the outcome
  }
}

/** Validates, promotes and rolls back the models of one key; see the module doc. */
export class Promoter {
  readonly #o: PromoterOptions;
  readonly #createEngine: EngineFactory;

  /** Keeps the options; opens nothing. */
  constructor(options: PromoterOptions) {
    this.#o = options;
    this.#createEngine = options.createEngine ?? ((m) => createOnnxEngine(m));
  }

  /**
   * Adds the candidate in `outDir` to the registry, validates it on `holdout` (and the
   * frames marked anomalous) against the serving model, and promotes and serves it, or
   * refuses it. Engines that do not serve are disposed.
   *
   * @throws when the candidate does not load or has no thresholds, the engine factory's,
   * the registry's and `swap`'s errors (a failed swap rolls the registry back first, when
   * there was a version before), the signal's reason.
   */
  async validate(
    outDir: string,
    holdout: readonly Frame[],
    options: ValidateOptions,
  ): Promise<PromotionOutcome> {
    const { registry, store } = this.#o;
    const engines: InferenceEngine[] = [];
    let handedOver: InferenceEngine | undefined;
    try {
      const id = await registry.addCandidate(outDir);
      options.onCandidate?.(id);
      const candModel = await readProjectModel(registry.pathOf(id));
      if (candModel.thresholds === undefined) {
        throw new RangeError(`candidate ${id} has no thresholds`);
      }
      const candidate = await this.#createEngine(candModel);
      engines.push(candidate);
      const current = await registry.current();
      let currentSubject;
      if (current !== undefined) {
        if (current.model.thresholds === undefined) {
          throw new RangeError(`current model ${current.id} has no thresholds`);
        }
        const engine = await this.#createEngine(current.model);
        engines.push(engine);
        currentSubject = { engine, thresholds: current.model.thresholds };
      }
      const anomalous: Tensor[] = [];
      for (const f of store.list({ label: "anomalous" })) {
        anomalous.push(frameTensor(await store.read(f.id)));
      }
      const decision = await validateCandidate(
        { engine: candidate, thresholds: candModel.thresholds },
        currentSubject,
        {
          frames: { normal: holdout.map(frameTensor), anomalous },
          margins: this.#o.margins,
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        },
      );
      const validation: ValidationFigures = {
        candidate: decision.candidate,
        ...(decision.current ? { current: decision.current } : {}),
      };
      if (!decision.promote) {
        return { kind: "refused", candidate: id, reason: decision.reason, validation };
      }
      options.signal?.throwIfAborted();
      const from = registry.currentId;
      await registry.promote(id, `${options.reason}; ${decision.reason}`);
      engines.splice(engines.indexOf(candidate), 1);
      handedOver = candidate;
      try {
        await this.serve(candidate, id, candModel);
      } catch (e) {
        if (from !== undefined) await registry.rollback(`swap failed: ${errorMessage(e)}`);
        throw e;
      }
      return {
        kind: "promoted",
        version: id,
        ...(from !== undefined ? { from } : {}),
        reason: decision.reason,
        validation,
      };
    } finally {
      for (const engine of engines) {
        if (engine !== handedOver) await disposeQuietly(engine);
      }
    }
  }

  /**
   * Serves the previous version again: the registry rolls back, then a fresh engine goes to
   * `swap`.
   *
   * @returns the version now serving and the one that served before.
   * @throws {RangeError} when there is no previous version; {@linkcode ModelFormatError}
   * when it does not load (nothing changes then); the engine factory's and `swap`'s errors
   * (the registry then names the rolled-back-to version).
   */
  async rollback(reason: string): Promise<{ version: string; from?: string }> {
    const registry = this.#o.registry;
    const from = registry.currentId;
    const id = await registry.rollback(reason);
    const model = await readProjectModel(registry.pathOf(id));
    await this.serve(await this.#createEngine(model), id, model);
    return { version: id, ...(from !== undefined ? { from } : {}) };
  }

  /**
   * Hands `engine` (serving version `id` of `model`) to `swap`, or disposes it when there
   * is none.
   *
   * @throws `swap`'s error (the engine is disposed then).
   */
  async serve(engine: InferenceEngine, id: string, model: EfficientAdModel): Promise<void> {
    const info: ServedModel = {
      version: id,
      ...(model.thresholds !== undefined ? { thresholds: model.thresholds } : {}),
    };
    const swap = this.#o.swap;
    if (swap === undefined) {
      await engine[Symbol.asyncDispose]();
      return;
    }
    try {
      await swap(engine, info);
    } catch (e) {
      await disposeQuietly(engine);
      throw e;
    }
  }
}
