/**
 * Pipeline files: YAML -> strict schema -> resolved pipeline. See `docs/pipeline.md`.
 *
 * ```ts
 * import { loadPipeline, redactedConfig } from "./mod.ts";
 * const pipeline = await loadPipeline("pipelines/demo.yaml");
 * console.log(JSON.stringify(redactedConfig(pipeline), null, 2));
 * ```
 *
 * @module
 */
export { ConfigError, type ConfigIssue, formatIssue } from "./config_error.ts";
export { DEFAULTS } from "./defaults.ts";
export { type Env, expandEnv } from "./env.ts";
export { loadPipeline, parsePipeline, type PipelineOptions } from "./load.ts";
export { type DisplayOptions, displayPipeline } from "./display.ts";
export { learningNotice, type LearningPlan, learningPlan } from "./learning.ts";
export { REDACTED, redactedConfig } from "./redacted.ts";
export {
  type ExecutionProviderName,
  type Hwaccel,
  type ModelHints,
  type ResolvedBatching,
  type ResolvedCamera,
  type ResolvedCameraRetrain,
  type ResolvedHttp,
  type ResolvedModel,
  type ResolvedMqtt,
  type ResolvedPipeline,
  type ResolvedRetrain,
  type ResolvedRetrainStore,
  type ResolvedRetrainTriggers,
  type ResolvedTls,
  type ResolveOptions,
  resolvePipeline,
} from "./resolve.ts";
export { type CameraFile, durationMs, type PipelineFile } from "./schema.ts";
export { resolveSource } from "./source.ts";
