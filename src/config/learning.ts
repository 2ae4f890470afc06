/**
 * Which cameras learn their scene before they inspect: with no `model.path`, the enabled
 * cameras that retrain start without a model and train their first one on the device
 * (`retrain.bootstrap`); the other enabled cameras are served by the built-in untrained model.
 *
 * @module
 */
import type { ResolvedPipeline } from "./resolve.ts";

/** The cameras that learn first, and the ones left with the untrained model. */
export interface LearningPlan {
  /** Enabled cameras that learn their scene first (empty when `model.path` is set). */
  readonly learning: readonly string[];
  /** Enabled cameras served by the built-in UNTRAINED model (empty when `model.path` is set). */
  readonly untrained: readonly string[];
}

/** Splits the enabled cameras of a pipeline without `model.path`; see the module doc. */
export function learningPlan(pipeline: ResolvedPipeline): LearningPlan {
  if (pipeline.model.path !== null) return { learning: [], untrained: [] };
  const enabled = pipeline.cameras.filter((c) => c.enabled).map((c) => c.name);
  const retrains = new Set(
    pipeline.retrain.enabled
      ? pipeline.retrain.cameras.filter((c) => c.enabled).map((c) => c.camera)
      : [],
  );
  return {
    learning: enabled.filter((c) => retrains.has(c)),
    untrained: enabled.filter((c) => !retrains.has(c)),
  };
}

/** The log line that says what cameras without a model do. */
export function learningNotice(pipeline: ResolvedPipeline): string | undefined {
  const plan = learningPlan(pipeline);
  if (plan.learning.length === 0) return undefined;
  const r = pipeline.retrain;
  return `no model.path: camera(s) ${plan.learning.join(", ")} learn their scene first ` +
    `(collect ${r.bootstrap.frames} normal frames, train ${r.training.steps} steps on this ` +
    "device, validate), then inspect with the model they learned; until then they publish " +
    "no scores (their <prefix>/<camera>/model topic and /status say how far they are)";
}
