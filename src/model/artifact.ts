/**
 * Loads any model artifact the product accepts, telling formats apart by content:
 * - a project model directory (`model.json` + `weights.safetensors`);
 * - anomalib's full state dict saved with `torch.save` (`.pth`, `.pt`, `.ckpt`);
 * - anomalib's pretrained teacher file (teacher-only state dict; for training only);
 * - an ONNX model exported by anomalib (`.onnx`), served as it is.
 *
 * @module
 */
import { sha256Hex } from "../core/sha256.ts";
import { errorMessage, ModelFormatError } from "../core/errors.ts";
import { type EfficientAdConfig, type ModelSize, resolveConfig } from "./config.ts";
import type { EfficientAdModel } from "./model.ts";
import { isProjectModelDir, readProjectModel } from "./project_format.ts";
import { inferArchitecture, type StateDict, validateStateDict } from "./state_dict.ts";
import { readTorchCheckpoint } from "./torch_checkpoint.ts";

/** What a bare state dict cannot say about itself (flags `--size`, `--padding`, ...). */
export interface ArchitectureHints {
  /** Checked against the weights when given. */
  readonly size?: ModelSize;
  readonly padding?: boolean;
  readonly padMaps?: boolean;
  readonly imageSize?: readonly [number, number];
}

/** A loaded artifact: an EfficientAD model in memory, or an anomalib ONNX export's path. */
export type Artifact =
  | { readonly kind: "efficientad"; readonly path: string; readonly model: EfficientAdModel }
  | { readonly kind: "anomalib-onnx"; readonly path: string };

/** A teacher network alone: `conv1.weight` ... keys, as anomalib publishes them. */
export interface TeacherWeights {
  readonly size: ModelSize;
  readonly outChannels: number;
  /** Keys without the `teacher.` prefix. */
  readonly stateDict: StateDict;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

async function headBytes(path: string, n: number): Promise<Uint8Array> {
  using file = await Deno.open(path);
  const buf = new Uint8Array(n);
  const read = (await file.read(buf)) ?? 0;
  return buf.subarray(0, read);
}

async function statOrThrow(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ModelFormatError(path, "no such file or directory", { cause: e });
    }
    throw new ModelFormatError(path, errorMessage(e), { cause: e });
  }
}

/** A short content hash used as the version of a model that carries none. */
export async function contentVersion(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return "sha256-" + (await sha256Hex(data)).slice(0, 12);
}

/**
 * Loads a model artifact for inference.
 *
 * @throws {ModelFormatError} naming the path and the problem: not found, unknown format,
 * corrupt, a teacher-only file, a state dict that does not match the hints.
 */
export async function loadArtifact(path: string, hints: ArchitectureHints = {}): Promise<Artifact> {
  const info = await statOrThrow(path);
  if (info.isDirectory) {
    if (!(await isProjectModelDir(path))) {
      throw new ModelFormatError(path, "a directory without model.json: not a project model");
    }
    return { kind: "efficientad", path, model: await readProjectModel(path) };
  }
  const head = await headBytes(path, 8);
  if (ZIP_MAGIC.every((b, i) => head[i] === b)) {
    const dict = await readTorchCheckpoint(path);
    if (!dict.has("teacher.conv1.weight") && dict.has("conv1.weight")) {
      throw new ModelFormatError(
        path,
        "holds a teacher network alone (anomalib's pretrained teacher format); " +
          "it serves training (`train --teacher`), not prediction",
      );
    }
    return { kind: "efficientad", path, model: await modelFromStateDict(path, dict, hints) };
  }
  if (head[0] === 0x80) {
    throw new ModelFormatError(
      path,
      "legacy (pre-1.6) PyTorch serialization; re-save it with torch.save(obj, path) in a " +
        "recent PyTorch, which writes the zip format",
    );
  }
  if (path.toLowerCase().endsWith(".onnx")) return { kind: "anomalib-onnx", path };
  throw new ModelFormatError(
    path,
    "unknown model format: expected a project model directory, a PyTorch .pth/.ckpt " +
      "checkpoint or an anomalib .onnx export",
  );
}

/**
 * Makes a model from an anomalib full state dict and the hints.
 *
 * @throws {ModelFormatError} when the dict does not match.
 */
export async function modelFromStateDict(
  path: string,
  dict: StateDict,
  hints: ArchitectureHints = {},
): Promise<EfficientAdModel> {
  const { size, teacherOutChannels } = inferArchitecture(dict, path);
  if (hints.size !== undefined && hints.size !== size) {
    throw new ModelFormatError(
      path,
      `--size ${hints.size} given, but the weights are EfficientAD size ${size.toUpperCase()}`,
    );
  }
  let config: EfficientAdConfig;
  try {
    config = resolveConfig({
      size,
      teacherOutChannels,
      ...(hints.padding !== undefined ? { padding: hints.padding } : {}),
      ...(hints.padMaps !== undefined ? { padMaps: hints.padMaps } : {}),
      ...(hints.imageSize !== undefined ? { imageSize: hints.imageSize } : {}),
    });
  } catch (e) {
    throw new ModelFormatError(path, errorMessage(e), { cause: e });
  }
  validateStateDict(dict, config, path);
  let version: string;
  try {
    version = await contentVersion(await Deno.readFile(path));
  } catch {
    version = "unknown";
  }
  return {
    config,
    stateDict: dict,
    provenance: { version, source: "anomalib state dict", notes: path },
    resize: "bilinear",
  };
}

/**
 * Loads a teacher for training: anomalib's pretrained teacher file (keys `conv1.weight`
 * ...), a full state dict (its `teacher.` keys), or a project model directory.
 *
 * @throws {ModelFormatError} when no teacher can be found.
 */
export async function loadTeacher(path: string): Promise<TeacherWeights> {
  const info = await statOrThrow(path);
  let dict: StateDict;
  if (info.isDirectory) dict = (await readProjectModel(path)).stateDict;
  else dict = await readTorchCheckpoint(path);
  const prefix = dict.has("teacher.conv1.weight") ? "teacher." : "";
  const { size, teacherOutChannels } = inferArchitecture(dict, path, prefix);
  const teacher: StateDict = new Map();
  for (const [k, v] of dict) {
    if (k.startsWith(prefix) && /^conv\d\.(weight|bias)$/.test(k.slice(prefix.length))) {
      teacher.set(k.slice(prefix.length), v);
    }
  }
  const probe: StateDict = new Map([...teacher].map(([k, v]) => [`teacher.${k}`, v]));
  validateStateDict(probe, resolveConfig({ size, teacherOutChannels }), path, {
    only: "teacher.",
  });
  return { size, outChannels: teacherOutChannels, stateDict: teacher };
}
