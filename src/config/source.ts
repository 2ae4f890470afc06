/**
 * Camera sources in the pipeline file: {@linkcode classifySource} (`src/core/source.ts`)
 * with relative file paths resolved against the pipeline file's folder.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { type CameraSource, classifySource, type SourceParse } from "../core/source.ts";

export type { CameraSource, SourceParse };

/**
 * Reads a camera `url`. Relative file paths are resolved against `baseDir`. Messages never
 * quote the URL (it may hold credentials).
 */
export function parseSource(text: string, baseDir: string): SourceParse {
  const parsed = classifySource(text);
  if (!parsed.ok || parsed.source.kind !== "file") return parsed;
  const path = parsed.source.path;
  return {
    ok: true,
    source: { kind: "file", path: isAbsolute(path) ? path : resolve(baseDir, path) },
  };
}
