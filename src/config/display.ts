/**
 * Renders a resolved pipeline for people: redacted, as YAML with the file's snake_case
 * keys, or as JSON with the resolved camelCase keys.
 *
 * @module
 */
import { stringify } from "yaml";
import { redactedConfig } from "./redacted.ts";
import type { ResolvedPipeline } from "./resolve.ts";

/** Options of {@linkcode displayPipeline}. */
export interface DisplayOptions {
  /** `yaml` (default): snake_case keys, as in pipeline files; `json`: the resolved form. */
  readonly format?: "yaml" | "json";
}

function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map((
        [k, v],
      ) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(v)]),
    );
  }
  return value;
}

/**
 * The pipeline with secrets replaced by `***` (see `redactedConfig`), every default
 * written out, as text ending in a newline.
 */
export function displayPipeline(pipeline: ResolvedPipeline, options: DisplayOptions = {}): string {
  const safe = redactedConfig(pipeline);
  if (options.format === "json") return JSON.stringify(safe, null, 2) + "\n";
  return `# ${safe.file}: resolved, every default filled in, secrets shown as ***\n` +
    stringify(snakeKeys(safe), { lineWidth: 0 });
}
