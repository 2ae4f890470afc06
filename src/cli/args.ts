/**
 * Command-line flags shared by the model commands: how to find, describe and run a model.
 *
 * @module
 */
import { DEFAULTS } from "../config/defaults.ts";
import { assertPositiveInteger } from "../core/check.ts";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { type ArchitectureHints, type Artifact, loadArtifact } from "../model/artifact.ts";
import { syntheticModel } from "../model/synthetic.ts";
import type { ModelSize } from "../model/config.ts";
import { type Precision, PRECISIONS } from "../core/frame.ts";
import type { EngineOptions, EngineType } from "../infer/create.ts";
import type { ExecutionProvider } from "../infer/onnx/session.ts";

/**
 * The value of a flag that takes a positive integer.
 *
 * @throws {InputError} "Cannot use --<flag> <value>: expected a positive integer".
 *
 * @example
 * ```ts
 * positiveIntegerFlag("batch", "8"); // 8
 * ```
 */
export function positiveIntegerFlag(flag: string, value: string): number {
  try {
    return assertPositiveInteger(Number(value), `--${flag}`);
  } catch (e) {
    throw new InputError(`Cannot use --${flag} ${value}: expected a positive integer`, {
      cause: e,
    });
  }
}

/** The `parseArgs` option table of the model flags. */
export const MODEL_FLAGS = {
  model: { type: "string" },
  engine: { type: "string" },
  providers: { type: "string" },
  threads: { type: "string" },
  size: { type: "string" },
  padding: { type: "boolean" },
  "no-pad-maps": { type: "boolean" },
  "image-size": { type: "string" },
  precision: { type: "string" },
} as const;

/** Parsed values of {@linkcode MODEL_FLAGS}. */
export interface ModelFlagValues {
  model?: string | undefined;
  engine?: string | undefined;
  providers?: string | undefined;
  threads?: string | undefined;
  size?: string | undefined;
  padding?: boolean | undefined;
  "no-pad-maps"?: boolean | undefined;
  "image-size"?: string | undefined;
  precision?: string | undefined;
}

const PROVIDERS: readonly ExecutionProvider[] = ["tensorrt", "cuda", "webgpu", "cpu"];

/**
 * Reads `--precision`: `fp32`, `fp16` or `int8`.
 *
 * @throws {InputError} "Cannot use --precision <value>: expected fp32, fp16 or int8".
 */
export function precisionFlag(value: string): Precision {
  const p = value.trim().toLowerCase();
  if (!(PRECISIONS as readonly string[]).includes(p)) {
    throw new InputError(`Cannot use --precision ${value}: expected fp32, fp16 or int8`);
  }
  return p as Precision;
}

/**
 * The value of `--size`: `s` or `m`, in either case.
 *
 * @throws {InputError} "Cannot use --size <value>: expected s or m".
 */
export function sizeFlag(value: string): ModelSize {
  const s = value.toLowerCase();
  if (s !== "s" && s !== "m") throw new InputError(`Cannot use --size ${value}: expected s or m`);
  return s;
}

/**
 * The value of `--image-size`: `HxW`, or one number for a square.
 *
 * @throws {InputError} "Cannot use --image-size <value>: expected HxW (e.g. 256x256) or one
 * number".
 */
export function imageSizeFlag(value: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(value);
  if (!m) {
    throw new InputError(
      `Cannot use --image-size ${value}: expected HxW (e.g. 256x256) or one number`,
    );
  }
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

/**
 * Turns the flags into architecture hints for bare state dicts.
 *
 * @throws {InputError} on a bad `--size` or `--image-size`.
 */
export function hintsFrom(v: ModelFlagValues): ArchitectureHints {
  const size = v.size !== undefined ? sizeFlag(v.size) : undefined;
  const imageSize = v["image-size"] !== undefined ? imageSizeFlag(v["image-size"]) : undefined;
  return {
    ...(size ? { size } : {}),
    ...(v.padding ? { padding: true } : {}),
    ...(v["no-pad-maps"] ? { padMaps: false } : {}),
    ...(imageSize ? { imageSize } : {}),
  };
}

/**
 * Reads `--providers`: ONNX execution providers in order of preference, comma-separated.
 *
 * @throws {InputError} on an unknown provider.
 */
export function providersFlag(value: string): ExecutionProvider[] {
  const providers = value.split(",").map((p) => p.trim().toLowerCase());
  for (const p of providers) {
    if (!PROVIDERS.includes(p as ExecutionProvider)) {
      throw new InputError(`Cannot use provider ${p}: expected one of ${PROVIDERS.join(", ")}`);
    }
  }
  return providers as ExecutionProvider[];
}

/**
 * Turns the flags into engine options.
 *
 * @throws {InputError} on an unknown engine or provider, or a bad thread count.
 */
export function engineOptionsFrom(v: ModelFlagValues): EngineOptions {
  const type = (v.engine ?? DEFAULTS.model.engine) as EngineType;
  if (type !== "onnx" && type !== "tfjs") {
    throw new InputError(`Cannot use --engine ${v.engine}: expected onnx or tfjs`);
  }
  const providers = providersFlag(v.providers ?? DEFAULTS.model.execution_providers.join(","));
  const threads = v.threads !== undefined ? positiveIntegerFlag("threads", v.threads) : undefined;
  const precision = v.precision !== undefined ? precisionFlag(v.precision) : undefined;
  return {
    type,
    executionProviders: providers,
    ...(threads ? { intraOpThreads: threads } : {}),
    ...(precision ? { precision } : {}),
  };
}

/**
 * Opens `--model`, or the built-in untrained model (with a warning saying so) when none is
 * given.
 *
 * @throws {ModelFormatError} when the model cannot be loaded.
 */
export async function openArtifact(flags: ModelFlagValues, log: Logger): Promise<Artifact> {
  if (flags.model === undefined) {
    log.warn(
      "no --model given: using a built-in UNTRAINED EfficientAD-S (synthetic weights, seed 0); " +
        "its scores, maps and metrics mean nothing. Pass --model with an anomalib .pth, an " +
        "anomalib .onnx export or a project model directory",
    );
    return { kind: "efficientad", path: "builtin:synthetic-s", model: syntheticModel() };
  }
  return await loadArtifact(flags.model, hintsFrom(flags));
}
