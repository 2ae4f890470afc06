/**
 * The project's own model format: a directory holding
 *
 * - `model.json`: what the weights cannot say (architecture flags, resize method,
 *   thresholds, provenance), validated strictly: unknown keys are errors;
 * - `weights.safetensors`: float32 tensors under anomalib's state-dict names, the
 *   quantiles as 0-d tensors;
 * - optionally `model.int8-<hash>.onnx`: the int8 graph (`quantize`, `export --precision int8`,
 *   `train --int8`), described by `model.json`'s `int8` block: its sha256, how it was
 *   calibrated, and its own quantiles and thresholds (computed on its own maps).
 *
 * ```json
 * {
 *   "format": "efficientad-edge/1",
 *   "config": { "size": "s", "teacher_out_channels": 384, "padding": false,
 *               "pad_maps": true, "image_size": [256, 256] },
 *   "resize": "bilinear",
 *   "thresholds": { "threshold": 0.61, "min": 0.12, "max": 1.4 },
 *   "provenance": { "version": "bottle-2024-05", "source": "anomalib",
 *                   "created_at": "2024-05-01T12:00:00Z", "notes": "MVTec bottle" },
 *   "int8": { "file": "model.int8-9f2c01ab34cd.onnx", "sha256": "9f2c01ab34cd...",
 *             "calibration": { "method": "percentile", "percentile": 99.99, "frames": 20,
 *                              "seconds": 14.2, "created_at": "2024-05-02T08:00:00Z" },
 *             "quantiles": { "qa_st": 0.1, "qb_st": 0.3, "qa_ae": 0.05, "qb_ae": 0.2 },
 *             "thresholds": { "threshold": 0.58, "min": 0.1, "max": 0.58 } }
 * }
 * ```
 *
 * `thresholds`, `provenance.created_at`, `provenance.notes` and `int8` are optional. An
 * int8 file is named by its content and written (fsynced) before `model.json` names it,
 * so a crash leaves the old `model.json` with the old file, or the new one with the new
 * file; files no `model.json` names are removed after the commit. A file that does not
 * match its sha256 is
 * refused when an engine loads it (the engine then serves fp32), never when the model is
 * read: a broken int8 graph costs the int8 speed, not the model.
 *
 * @module
 */
import { writeFileAtomic } from "../core/atomic_write.ts";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { errorMessage, ModelFormatError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { configFromJson, configToJson, type EfficientAdConfig } from "./config.ts";
import type { EfficientAdModel, Int8Graph, Provenance, Thresholds } from "./model.ts";
import { sha256Hex } from "../core/sha256.ts";
import { encodeSafetensors, readSafetensors } from "./safetensors.ts";
import { validateStateDict } from "./state_dict.ts";

/** The `format` value of `model.json` that this version reads and writes. */
export const PROJECT_FORMAT = "efficientad-edge/1";
/** The metadata file of a project model directory. */
export const MODEL_JSON = "model.json";
/** The weights file of a project model directory. */
export const WEIGHTS_FILE = "weights.safetensors";
/**
 * The int8 graph's file name in a project model directory, named by its content
 * (`model.int8-<first 12 hex digits of its sha256>.onnx`), so that a new graph never
 * replaces the file the current `model.json` names.
 */
export function int8FileName(sha256: string): string {
  return `model.int8-${sha256.slice(0, 12)}.onnx`;
}

const thresholdsSchema = z.strictObject({
  threshold: z.number(),
  min: z.number(),
  max: z.number(),
}).refine((t) => t.max >= t.min, { message: "max must not be below min", path: ["max"] });

const int8Schema = z.strictObject({
  file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, {
    message: "must be a plain file name inside the model directory",
  }),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: "must be 64 lowercase hex digits" }),
  calibration: z.strictObject({
    method: z.enum(["minmax", "percentile", "entropy"]),
    percentile: z.number().gt(0).max(100).optional(),
    frames: z.int().min(1),
    seconds: z.number().min(0),
    created_at: z.string(),
  }),
  quantiles: z.strictObject({
    qa_st: z.number(),
    qb_st: z.number(),
    qa_ae: z.number(),
    qb_ae: z.number(),
  }),
  thresholds: thresholdsSchema,
});

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
  thresholds: thresholdsSchema.optional(),
  provenance: z.strictObject({
    version: z.string().min(1),
    source: z.string().min(1),
    created_at: z.string().optional(),
    notes: z.string().optional(),
  }),
  int8: int8Schema.optional(),
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
  const int8 = json.int8 ? int8FromJson(json.int8, dirname(path)) : undefined;
  return {
    config,
    resize: json.resize,
    provenance,
    ...(thresholds !== undefined ? { thresholds } : {}),
    ...(int8 !== undefined ? { int8 } : {}),
  };
}

function int8FromJson(json: z.infer<typeof int8Schema>, dir: string): Int8Graph {
  const c = json.calibration;
  const q = json.quantiles;
  return {
    path: join(dir, json.file),
    sha256: json.sha256,
    calibration: {
      method: c.method,
      ...(c.percentile !== undefined ? { percentile: c.percentile } : {}),
      frames: c.frames,
      seconds: c.seconds,
      createdAt: c.created_at,
    },
    quantiles: { qaSt: q.qa_st, qbSt: q.qb_st, qaAe: q.qa_ae, qbAe: q.qb_ae },
    thresholds: json.thresholds,
  };
}

function int8ToJson(int8: Int8Graph): z.infer<typeof int8Schema> {
  const c = int8.calibration;
  const q = int8.quantiles;
  const t = int8.thresholds;
  return {
    file: basename(int8.path),
    sha256: int8.sha256,
    calibration: {
      method: c.method,
      ...(c.percentile !== undefined ? { percentile: c.percentile } : {}),
      frames: c.frames,
      seconds: c.seconds,
      created_at: c.createdAt,
    },
    quantiles: { qa_st: q.qaSt, qb_st: q.qbSt, qa_ae: q.qaAe, qb_ae: q.qbAe },
    thresholds: { threshold: t.threshold, min: t.min, max: t.max },
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
    ...(model.int8 !== undefined ? { int8: int8ToJson(model.int8) } : {}),
  };
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(path, `not valid JSON (${errorMessage(e)})`, { cause: e });
  }
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
  const meta = parseModelJson(parseJson(text, jsonPath), jsonPath);
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
  let int8Bytes: Uint8Array | undefined;
  try {
    int8Bytes = model.int8 ? await readInt8Graph(model.int8) : undefined;
  } catch (e) {
    throw new RangeError(`Cannot write model ${dir}: ${errorMessage(e)}`, { cause: e });
  }
  const json = modelJsonOf(model);
  if (json.int8 && model.int8) json.int8.file = int8FileName(model.int8.sha256);
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
  if (int8Bytes && json.int8) await writeFileAtomic(join(dir, json.int8.file), int8Bytes);
  await writeModelJson(dir, json);
}

async function writeModelJson(dir: string, json: ModelJson): Promise<void> {
  await writeFileAtomic(
    join(dir, MODEL_JSON),
    new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n"),
  );
  await removeStaleInt8(dir, json.int8?.file);
}

/** Removes `model.int8-*.onnx` files other than `keep` (after a commit). */
async function removeStaleInt8(dir: string, keep: string | undefined): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^model\.int8-[0-9a-f]+\.onnx$/.test(e.name) && e.name !== keep) {
      await Deno.remove(join(dir, e.name)).catch(() => {});
    }
  }
}

/**
 * Reads a model's int8 graph file and checks it against the sha256 `model.json` records:
 * the one check of an int8 file, for the engine, `export` and copies of the model.
 *
 * @throws {ModelFormatError} naming the file when it cannot be read or does not match.
 */
export async function readInt8Graph(int8: Int8Graph): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(int8.path);
  } catch (e) {
    throw new ModelFormatError(int8.path, `cannot read it (${errorMessage(e)})`, { cause: e });
  }
  if (await sha256Hex(bytes) !== int8.sha256) {
    throw new ModelFormatError(
      int8.path,
      "it does not match the sha256 in model.json (altered or partly written); quantize " +
        "the model again",
    );
  }
  return bytes;
}

/**
 * Adds an int8 graph to a project model directory, replacing any it had: writes the
 * graph under {@linkcode int8FileName}, then `model.json` with the `int8` block (the
 * commit point), then removes the old graph file. The weights are not touched.
 *
 * @returns the int8 graph as a model carries it (path inside `dir`).
 * @throws {ModelFormatError} when the directory's `model.json` cannot be read.
 * File-system errors of the writes.
 *
 * @example
 * ```ts
 * import { writeInt8Graph } from "./project_format.ts";
 *
 * async function add(dir: string, graph: Uint8Array) {
 *   return await writeInt8Graph(dir, graph, {
 *     calibration: { method: "minmax", frames: 16, seconds: 9.5, createdAt: new Date().toISOString() },
 *     quantiles: { qaSt: 0.1, qbSt: 0.3, qaAe: 0.05, qbAe: 0.2 },
 *     thresholds: { threshold: 0.6, min: 0.1, max: 0.6 },
 *   });
 * }
 * ```
 */
export async function writeInt8Graph(
  dir: string,
  graph: Uint8Array,
  info: Omit<Int8Graph, "path" | "sha256">,
): Promise<Int8Graph> {
  const jsonPath = join(dir, MODEL_JSON);
  const meta = parseModelJson(parseJson(await readText(jsonPath, undefined), jsonPath), jsonPath);
  const sha256 = await sha256Hex(graph);
  const int8: Int8Graph = { ...info, path: join(dir, int8FileName(sha256)), sha256 };
  await writeFileAtomic(int8.path, graph);
  await writeModelJson(dir, modelJsonOf({ ...meta, int8 }));
  return int8;
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
