/**
 * The project's own model format: a directory holding
 *
 * - `model.json`: what the weights cannot say (architecture flags, resize method,
 *   thresholds, provenance), validated strictly: unknown keys are errors;
 * - `weights.safetensors`: float32 tensors under anomalib's state-dict names, the
 *   quantiles as 0-d tensors.
 *
 * ```json
 * {
 *   "format": "efficientad-edge/1",
 *   "config": { "size": "s", "teacher_out_channels": 384, "padding": false,
 *               "pad_maps": true, "image_size": [256, 256] },
 *   "resize": "bilinear",
 *   "thresholds": { "threshold": 0.61, "min": 0.12, "max": 1.4 },
 *   "provenance": { "version": "bottle-2024-05", "source": "anomalib",
 *                   "created_at": "2024-05-01T12:00:00Z", "notes": "MVTec bottle" }
 * }
 * ```
 *
 * `thresholds`, `provenance.created_at` and `provenance.notes` are optional.
 *
 * @module
 */
import { writeFileAtomic } from "../core/atomic_write.ts";
import { join } from "node:path";
import { z } from "zod";
import { errorMessage, ModelFormatError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { configFromJson, configToJson, type EfficientAdConfig } from "./config.ts";
import type { EfficientAdModel, Provenance, Thresholds } from "./model.ts";
import { encodeSafetensors, readSafetensors } from "./safetensors.ts";
import { validateStateDict } from "./state_dict.ts";

/** The `format` value of `model.json` that this version reads and writes. */
export const PROJECT_FORMAT = "efficientad-edge/1";
/** The metadata file of a project model directory. */
export const MODEL_JSON = "model.json";
/** The weights file of a project model directory. */
export const WEIGHTS_FILE = "weights.safetensors";

const modelJsonSchema = z.strictObject({
  format: z.literal(PROJECT_FORMAT),
  config: z.strictObject({
    size: z.enum(["s", "m"]),
    teacher_out_channels: z.int().min(1),
    padding: z.boolean(),
    pad_maps: z.boolean(),
    image_size: z.tuple([z.int().min(1), z.int().min(1)]),
  }),
  resize: z.literal("bilinear"),
  thresholds: z.strictObject({ threshold: z.number(), min: z.number(), max: z.number() })
    .refine((t) => t.max >= t.min, { message: "max must not be below min", path: ["max"] })
    .optional(),
  provenance: z.strictObject({
    version: z.string().min(1),
    source: z.string().min(1),
    created_at: z.string().optional(),
    notes: z.string().optional(),
  }),
});

/** `model.json` as stored (snake_case keys). */
export type ModelJson = z.infer<typeof modelJsonSchema>;

/** Options of {@linkcode readProjectModel}. */
export interface ReadProjectModelOptions {
  /** Aborts the file reads. */
  readonly signal?: AbortSignal;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : `${out ? "." : ""}${String(p)}`;
  return out;
}

/** One line per problem, each naming the field: `config.image_size[0]: ...`. */
function describeIssues(error: z.ZodError): string {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const where = formatPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) lines.push(`${where ? `${where}.` : ""}${key}: unknown key`);
    } else {
      lines.push(`${where || "(top level)"}: ${issue.message}`);
    }
  }
  return lines.join("; ");
}

/**
 * Validates the parsed contents of a `model.json` and converts them to the in-memory
 * form (everything but the weights).
 *
 * @param path names the file in error messages.
 * @throws {ModelFormatError} naming `path` and each bad field when the format version is
 * not {@linkcode PROJECT_FORMAT}, a key is missing, unknown or of the wrong type, or the
 * config is out of range.
 */
export function parseModelJson(
  value: unknown,
  path: string,
): Omit<EfficientAdModel, "stateDict"> {
  if (typeof value === "object" && value !== null && "format" in value) {
    const format = (value as { format: unknown }).format;
    if (format !== PROJECT_FORMAT) {
      throw new ModelFormatError(
        path,
        `format is ${JSON.stringify(format)}, expected "${PROJECT_FORMAT}" ` +
          `(a newer or different model format)`,
      );
    }
  }
  const result = modelJsonSchema.safeParse(value);
  if (!result.success) throw new ModelFormatError(path, describeIssues(result.error));
  const json = result.data;
  let config: EfficientAdConfig;
  try {
    config = configFromJson(json.config);
  } catch (e) {
    throw new ModelFormatError(path, `config: ${errorMessage(e)}`, { cause: e });
  }
  const p = json.provenance;
  const provenance: Provenance = {
    version: p.version,
    source: p.source,
    ...(p.created_at !== undefined ? { createdAt: p.created_at } : {}),
    ...(p.notes !== undefined ? { notes: p.notes } : {}),
  };
  const thresholds: Thresholds | undefined = json.thresholds;
  return {
    config,
    resize: json.resize,
    provenance,
    ...(thresholds !== undefined ? { thresholds } : {}),
  };
}

/** The `model.json` object of a model (snake_case keys, optional fields left out). */
export function modelJsonOf(model: Omit<EfficientAdModel, "stateDict">): ModelJson {
  const { config, provenance, thresholds } = model;
  return {
    format: PROJECT_FORMAT,
    config: configToJson(config),
    resize: model.resize,
    ...(thresholds !== undefined
      ? {
        thresholds: { threshold: thresholds.threshold, min: thresholds.min, max: thresholds.max },
      }
      : {}),
    provenance: {
      version: provenance.version,
      source: provenance.source,
      ...(provenance.createdAt !== undefined ? { created_at: provenance.createdAt } : {}),
      ...(provenance.notes !== undefined ? { notes: provenance.notes } : {}),
    },
  };
}

async function readText(path: string, signal: AbortSignal | undefined): Promise<string> {
  try {
    return await Deno.readTextFile(path, signal ? { signal } : {});
  } catch (e) {
    if (signal?.aborted) throw e;
    const problem = e instanceof Deno.errors.NotFound ? "the file does not exist" : errorMessage(e);
    throw new ModelFormatError(path, problem, { cause: e });
  }
}

/**
 * Loads a project model directory: `model.json` and `weights.safetensors`.
 *
 * @throws {ModelFormatError} naming the file and the problem when a file is missing or
 * unreadable, `model.json` is not JSON or not valid (see {@linkcode parseModelJson}), or
 * the weights are corrupt, miss a key of the architecture or have a wrong shape.
 *
 * @example
 * ```ts
 * import { readProjectModel } from "./project_format.ts";
 *
 * async function load(dir = "models/bottle") {
 *   const model = await readProjectModel(dir);
 *   return model.provenance.version;
 * }
 * ```
 */
export async function readProjectModel(
  dir: string,
  options: ReadProjectModelOptions = {},
): Promise<EfficientAdModel> {
  const jsonPath = join(dir, MODEL_JSON);
  const text = await readText(jsonPath, options.signal);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(jsonPath, `not valid JSON (${errorMessage(e)})`, {
      cause: e,
    });
  }
  const meta = parseModelJson(value, jsonPath);
  const weightsPath = join(dir, WEIGHTS_FILE);
  const { tensors } = await readSafetensors(
    weightsPath,
    options.signal ? { signal: options.signal } : {},
  );
  validateStateDict(tensors, meta.config, weightsPath);
  return { ...meta, stateDict: tensors };
}

/**
 * Saves a model as a project model directory, creating the directory when needed. Each
 * file is written to a temporary name and renamed, so a reader never sees a partial file;
 * the weights are replaced first and `model.json` last. Quantiles are stored as 0-d
 * tensors.
 *
 * @throws {RangeError} naming `dir` when the state dict does not match the config or the
 * metadata would not read back (an empty version or source, thresholds with max < min);
 * nothing is written then. File-system errors as `Deno.writeFile` and `Deno.rename`.
 */
export async function writeProjectModel(dir: string, model: EfficientAdModel): Promise<void> {
  try {
    validateStateDict(model.stateDict, model.config, dir);
  } catch (e) {
    const message = errorMessage(e).replace(`Cannot load model ${dir}: `, "");
    throw new RangeError(`Cannot write model ${dir}: ${message}`, { cause: e });
  }
  const json = modelJsonOf(model);
  const check = modelJsonSchema.safeParse(json);
  if (!check.success) {
    throw new RangeError(`Cannot write model ${dir}: ${describeIssues(check.error)}`);
  }
  const tensors = new Map<string, Tensor>();
  for (const [key, t] of model.stateDict) {
    const scalar = key.startsWith("quantiles.") && t.data.length === 1;
    tensors.set(key, scalar ? { shape: [], data: t.data } : t);
  }
  const weights = encodeSafetensors(tensors, { metadata: { format: PROJECT_FORMAT } });
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, WEIGHTS_FILE), weights);
  await writeFileAtomic(
    join(dir, MODEL_JSON),
    new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n"),
  );
}

/**
 * Whether `path` is a directory holding a `model.json` file, i.e. looks like a project
 * model. Nothing is parsed: {@linkcode readProjectModel} reports what is wrong inside.
 *
 * @throws {Deno.errors.PermissionDenied} and other file-system errors except "not found".
 */
export async function isProjectModelDir(path: string): Promise<boolean> {
  try {
    if (!(await Deno.stat(path)).isDirectory) return false;
    return (await Deno.stat(join(path, MODEL_JSON))).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}
