/**
 * Loads the pipeline's model and opens its engine, saying plainly when the service runs
 * the built-in untrained model.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import type { LearningPlan, ResolvedModel } from "../config/mod.ts";
import { type Artifact, loadArtifact } from "../model/artifact.ts";
import { resolveConfig } from "../model/config.ts";
import type { ResizeMethod, Thresholds } from "../model/model.ts";
import { servedThresholds } from "../model/thresholds.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { createEngine } from "../infer/create.ts";
import type { InferenceEngine } from "../infer/engine.ts";

/** What the pipeline needs to know about its model besides the engine. */
export interface LoadedModel {
  readonly engine: InferenceEngine;
  readonly artifact: Artifact;
  readonly version: string;
  readonly source: string;
  readonly untrained: boolean;
  /**
   * The thresholds that judge the engine's scores: those of the precision it serves
   * (`servedThresholds`: an int8 graph's own, never fp32 thresholds for int8 scores).
   */
  readonly thresholds?: Thresholds;
  /** How frames must be resized (anomalib exports resize themselves: `bilinear`). */
  readonly resize: ResizeMethod;
}

/**
 * Loads the model of a pipeline and opens its engine at `model.precision` (an int8 or fp16
 * graph that cannot be served falls back to fp32 with a warning; `engine.precision` says
 * which serves).
 *
 * @throws {ModelFormatError} when the model file cannot be used; the message names it.
 */
export async function loadPipelineModel(
  model: ResolvedModel,
  log: Logger,
  learning?: {
    readonly plan: LearningPlan;
    readonly notice?: string;
    /** Serve this engine instead of opening one for the artifact. */
    readonly engine?: InferenceEngine;
  },
): Promise<LoadedModel> {
  let artifact: Artifact;
  if (model.path === null) {
    const m = syntheticModel(resolveConfig({
      ...(model.hints.size ? { size: model.hints.size } : {}),
      ...(model.hints.padding !== undefined ? { padding: model.hints.padding } : {}),
      ...(model.hints.padMaps !== undefined ? { padMaps: model.hints.padMaps } : {}),
      ...(model.hints.imageSize ? { imageSize: model.hints.imageSize } : {}),
    }));
    if (learning?.notice !== undefined) log.info(learning.notice);
    const untrained = learning?.plan.untrained;
    if (untrained === undefined || untrained.length > 0) {
      const who = untrained === undefined ? "" : ` to camera(s) ${untrained.join(", ")}`;
      log.warn(
        `model.path is not set: serving the built-in UNTRAINED EfficientAD ` +
          `${m.config.size.toUpperCase()} (synthetic weights, version ${m.provenance.version})` +
          `${who}. ` +
          "Its scores show the pipeline working but mean nothing and it flags nothing; set " +
          "model.path to an anomalib .pth / .onnx export or a project model directory, or " +
          "turn retraining on so that cameras learn their scene",
      );
    }
    artifact = { kind: "efficientad", path: "builtin:synthetic", model: m };
  } else {
    artifact = await loadArtifact(model.path, model.hints);
  }
  const engine = learning?.engine ?? await createEngine(artifact, {
    type: model.engine,
    executionProviders: model.executionProviders,
    ...(model.threads !== null ? { intraOpThreads: model.threads } : {}),
    precision: model.precision,
    logger: log,
  });
  if (artifact.kind === "anomalib-onnx") {
    return {
      engine,
      artifact,
      version: artifact.path.split("/").at(-1) ?? artifact.path,
      source: "anomalib onnx export",
      untrained: false,
      resize: "bilinear",
    };
  }
  const m = artifact.model;
  const thresholds = servedThresholds(m, engine.precision);
  return {
    engine,
    artifact,
    version: m.provenance.version,
    source: m.provenance.source,
    untrained: m.provenance.source === "synthetic",
    ...(thresholds ? { thresholds } : {}),
    resize: m.resize,
  };
}
