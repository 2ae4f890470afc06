/**
 * Checks data against the pipeline schema and turns every problem into a
 * `path (line N): message` issue: unknown keys with a "did you mean", missing keys as
 * `is required`, duplicate camera names.
 *
 * @module
 */
import type { z } from "zod";
import { type ConfigIssue, formatPath } from "./config_error.ts";
import { knownKeys, type PipelineFile, pipelineSchema } from "./schema.ts";
import { suggestKey } from "./suggest.ts";

/** Finds the line of a key path (or of the key itself, with `key: true`). */
export type LineFinder = (
  path: readonly PropertyKey[],
  options?: { readonly key?: boolean },
) => number | undefined;

/** The result of {@linkcode checkPipeline}. */
export type CheckResult =
  | { readonly ok: true; readonly file: PipelineFile }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const segment of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[segment];
  }
  return v;
}

function duplicateNames(data: unknown): { path: PropertyKey[]; message: string }[] {
  const cameras = valueAt(data, ["cameras"]);
  if (!Array.isArray(cameras)) return [];
  const out: { path: PropertyKey[]; message: string }[] = [];
  const seen = new Map<string, number>();
  cameras.forEach((camera: unknown, index) => {
    const name = valueAt(camera, ["name"]);
    if (typeof name !== "string") return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else {
      out.push({
        path: ["cameras", index, "name"],
        message: `duplicate camera name "${name}" (also cameras[${first}])`,
      });
    }
  });
  return out;
}

function fromZod(
  issue: z.core.$ZodIssue,
  data: unknown,
): { path: PropertyKey[]; message: string; key?: boolean }[] {
  const path = [...issue.path];
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(path);
    return issue.keys.map((key) => {
      const suggestion = suggestKey(key, known);
      return {
        path: [...path, key],
        message: suggestion ? `unknown key (did you mean "${suggestion}"?)` : "unknown key",
        key: true,
      };
    });
  }
  if (issue.code === "invalid_type" && path.length > 0 && valueAt(data, path) === undefined) {
    return [{ path, message: "is required" }];
  }
  return [{ path, message: issue.message }];
}

/**
 * Checks pipeline data (what the YAML parsed to, after `${VAR}` substitution). Issues come
 * sorted by line, then path; `skip` leaves out issues at paths already reported.
 */
export function checkPipeline(
  data: unknown,
  options: { readonly lineOf?: LineFinder; readonly skip?: ReadonlySet<string> } = {},
): CheckResult {
  const raw: { path: PropertyKey[]; message: string; key?: boolean }[] = duplicateNames(data);
  const parsed = pipelineSchema.safeParse(data ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) raw.push(...fromZod(issue, data ?? {}));
  }
  const issues: ConfigIssue[] = [];
  for (const r of raw) {
    const path = formatPath(r.path);
    if (!r.key && options.skip?.has(path)) continue;
    const line = options.lineOf?.(r.path, r.key ? { key: true } : {});
    issues.push({ path, line, message: r.message });
  }
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  if (issues.length > 0 || !parsed.success) return { ok: false, issues };
  return { ok: true, file: parsed.data };
}
