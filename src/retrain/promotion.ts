/**
 * Promotion and rollback of a key's models: a trained candidate is added to the
 * {@linkcode ModelRegistry}, validated against the serving model on the held-out normal
 * frames and the frames an operator marked anomalous ({@linkcode validateCandidate}), then
 * promoted (the registry first, then the injected `swap` serves a fresh engine; a failing
 * swap rolls the registry back) or refused with the reason. A rollback makes the registry
 * serve the previous version and swaps a fresh engine of it in.
 *
 * **Precision.** Engines open at the promoter's `precision` (`model.precision`), and each
 * model is judged and served with the thresholds of the precision its engine serves
 * (`servedThresholds`): at `int8` the candidate's int8 graph goes through the gate with its
 * own thresholds, and a candidate without a usable int8 graph is refused.
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
import type { Logger } from "../core/log.ts";
import type { EfficientAdModel, Thresholds } from "../model/model.ts";
import type { Precision } from "../core/frame.ts";
import { readProjectModel } from "../model/project_format.ts";
import { servedThresholds } from "../model/thresholds.ts";
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
  /** The thresholds of the precision the engine serves (`servedThresholds`). */
  readonly thresholds?: Thresholds;
}

/** What the {@linkcode Promoter} asks of an {@linkcode EngineFactory}. */
export interface EngineFactoryOptions {
  /**
   * The precision to serve (`model.precision`); a precision that cannot be served falls
   * back to fp32 (`engine.precision` says which serves) with a warning.
   */
  readonly precision?: Precision;
  /** Receives the engine's warnings (the reason of a fallback) instead of the factory's own. */
  readonly logger?: Logger;
}

/** Makes an engine for a model (validation and swaps). */
export type EngineFactory = (
  model: EfficientAdModel,
  options?: EngineFactoryOptions,
) => Promise<InferenceEngine>;

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
   * The precision models are validated and served at (`model.precision`). Default `fp32`.
   * With `int8` a candidate's int8 graph goes through the gate, judged by its own
   * thresholds; a candidate without a usable int8 graph is refused.
   */
  readonly precision?: Precision;
  /** Receives the engines' warnings (a precision fallback). */
  readonly logger?: Logger;
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
    /** Absent when it was refused before scoring (no usable int8 graph). */
    readonly validation?: ValidationFigures;
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

/** A logger that forwards to `base` and keeps the `reason` of every warning. */
function recordingLogger(base: Logger | undefined, reasons: string[]): Logger {
  const keep = (message: string, fields?: Record<string, unknown>) =>
    void reasons.push(typeof fields?.reason === "string" ? fields.reason : message);
  const over = (inner: Logger | undefined): Logger => ({
    debug: (m, f) => inner?.debug(m, f),
    info: (m, f) => inner?.info(m, f),
    warn: (m, f) => {
      keep(m, f);
      inner?.warn(m, f);
    },
    error: (m, f) => {
      keep(m, f);
      inner?.error(m, f);
    },
    child: (scope) => over(inner?.child(scope)),
    withLevel: (level) => over(inner?.withLevel(level)),
  });
  return over(base);
}

/** Validates, promotes and rolls back the models of one key; see the module doc. */
export class Promoter {
  readonly #o: PromoterOptions;
  readonly #createEngine: EngineFactory;
  readonly #precision: Precision;

  /** Keeps the options; opens nothing. */
  constructor(options: PromoterOptions) {
    this.#o = options;
    this.#createEngine = options.createEngine ?? ((m, o) => createOnnxEngine(m, o));
    this.#precision = options.precision ?? "fp32";
  }

  /** Opens `model` at the promoter's precision; `reasons` gets the engine's warnings. */
  #open(model: EfficientAdModel, reasons: string[] = []): Promise<InferenceEngine> {
    return this.#createEngine(model, {
      precision: this.#precision,
      logger: recordingLogger(this.#o.logger, reasons),
    });
  }

  /**
   * Adds the candidate in `outDir` to the registry, validates it on `holdout` (and the
   * frames marked anomalous) against the serving model, and promotes and serves it, or
   * refuses it. Engines that do not serve are disposed.
   *
   * At precision `int8` the candidate's int8 graph is validated, against its own thresholds
   * (the current model runs at the precision it serves); a candidate without one, or whose
   * int8 graph does not load, is refused with that reason before anything is scored.
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
      const int8 = this.#precision === "int8";
      if (int8 && candModel.int8 === undefined) {
        return {
          kind: "refused",
          candidate: id,
          reason: "candidate has no usable int8 graph (its model directory has none: the " +
            "trainer did not calibrate one)",
        };
      }
      const reasons: string[] = [];
      const candidate = await this.#open(candModel, reasons);
      engines.push(candidate);
      if (int8 && candidate.precision !== "int8") {
        return {
          kind: "refused",
          candidate: id,
          reason: `candidate has no usable int8 graph (${
            reasons.at(-1) ?? "it did not load: the engine serves fp32"
          })`,
        };
      }
      const candThresholds = servedThresholds(candModel, candidate.precision);
      if (candThresholds === undefined) {
        throw new RangeError(`candidate ${id} has no thresholds for ${candidate.precision}`);
      }
      const current = await registry.current();
      let currentSubject;
      if (current !== undefined) {
        const engine = await this.#open(current.model);
        engines.push(engine);
        const thresholds = servedThresholds(current.model, engine.precision);
        if (thresholds === undefined) {
          throw new RangeError(`current model ${current.id} has no thresholds`);
        }
        currentSubject = { engine, thresholds };
      }
      const anomalous: Tensor[] = [];
      for (const f of store.list({ label: "anomalous" })) {
        anomalous.push(frameTensor(await store.read(f.id)));
      }
      const decision = await validateCandidate(
        {
          engine: candidate,
          thresholds: candThresholds,
          ...(candidate.precision === "int8" ? { name: "candidate's int8 graph" } : {}),
        },
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
    await this.serve(await this.#open(model), id, model);
    return { version: id, ...(from !== undefined ? { from } : {}) };
  }

  /**
   * Hands `engine` (serving version `id` of `model`) to `swap` with the thresholds of the
   * precision the engine serves, or disposes it when there is no `swap`.
   *
   * @throws `swap`'s error (the engine is disposed then).
   */
  async serve(engine: InferenceEngine, id: string, model: EfficientAdModel): Promise<void> {
    const thresholds = servedThresholds(model, engine.precision);
    const info: ServedModel = { version: id, ...(thresholds !== undefined ? { thresholds } : {}) };
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
