/**
 * Camera sources in the pipeline file: {@linkcode classifySource} (`src/core/source.ts`)
 * with relative file paths resolved against the pipeline file's folder. The result is what
 * the ingest stage takes (`ResolvedCamera.source`).
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { classifySource, type SourceParse } from "../core/source.ts";

/**
 * Reads a camera `url`. Relative file paths are resolved against `baseDir`. Messages never
 * quote the URL (it may hold credentials).
 */
export function resolveSource(text: string, baseDir: string): SourceParse {
  const parsed = classifySource(text);
  if (!parsed.ok || parsed.source.kind !== "file") return parsed;
  const path = parsed.source.path;
  return {
    ok: true,
    source: { kind: "file", path: isAbsolute(path) ? path : resolve(baseDir, path) },
  };
}
