/**
 * Reads a pipeline file: YAML (with line numbers) -> `${VAR}` substitution -> strict
 * schema -> resolved pipeline.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { checkPipeline } from "./check.ts";
import { errorMessage } from "../core/errors.ts";
import { ConfigError, type ConfigIssue } from "./config_error.ts";
import { type Env, substituteEnv } from "./env.ts";
import { lineOf } from "./locate.ts";
import { type ResolvedPipeline, resolvePipeline } from "./resolve.ts";

/** Options of {@linkcode parsePipeline} and {@linkcode loadPipeline}. */
export interface PipelineOptions {
  /** Variables for `${VAR}`. Default: the process environment. */
  readonly env?: Env;
  /** For the default MQTT client id. Default: this machine's host name. */
  readonly hostname?: string;
  /**
   * Relative paths in the file are resolved against it. Default: the file's directory
   * ({@linkcode loadPipeline}) or the working directory ({@linkcode parsePipeline}).
   */
  readonly baseDir?: string;
}

function processEnv(): Env {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

/** `Map keys must be unique at line 3, column 1:\n\n...` -> `map keys must be unique`. */
function yamlMessage(message: string): string {
  const first = message.split("\n")[0] ?? message;
  const text = first.replace(/ at line \d+, column \d+:?\s*$/, "").replace(/:$/, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Parses and resolves a pipeline from YAML text. `name` names it in messages (a path or
 * a label).
 *
 * @throws {ConfigError} listing every problem found, each as `path (line N): message`:
 * YAML syntax errors (these stop before validation), missing environment variables,
 * unknown keys, wrong types and values.
 *
 * @example
 * ```ts
 * const pipeline = parsePipeline("cameras:\n  - name: a\n    url: lavfi:testsrc2\n", "inline");
 * pipeline.mqtt.url; // "mqtt://127.0.0.1:1883" (the embedded broker)
 * ```
 */
export function parsePipeline(
  text: string,
  name: string,
  options: PipelineOptions = {},
): ResolvedPipeline {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = doc.errors.map((e) => ({
      path: "",
      line: e.linePos?.[0].line ?? counter.linePos(e.pos[0]).line,
      message: `YAML syntax: ${yamlMessage(e.message)}`,
    }));
    throw new ConfigError(name, issues);
  }
  const source = { doc, counter };
  const substitution = substituteEnv(source, options.env ?? processEnv());
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(name, [{ path: "", line: undefined, message: errorMessage(e) }], {
      cause: e,
    });
  }
  const checked = checkPipeline(data, {
    lineOf: (path, o) => lineOf(source, path, o),
    skip: substitution.failedPaths,
  });
  const schemaIssues = checked.ok ? [] : checked.issues;
  const unknown = new Set(
    schemaIssues.filter((i) => i.message.startsWith("unknown key")).map((i) => i.path),
  );
  const issues = [...substitution.issues.filter((i) => !unknown.has(i.path)), ...schemaIssues];
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  if (issues.length > 0 || !checked.ok) throw new ConfigError(name, issues);
  return resolvePipeline(checked.file, {
    file: name,
    baseDir: options.baseDir ?? Deno.cwd(),
    ...(options.hostname !== undefined ? { hostname: options.hostname } : {}),
    secrets: substitution.secrets,
  });
}

/**
 * Reads, validates and resolves a pipeline file. Relative paths inside it are resolved
 * against the file's directory.
 *
 * @throws {ConfigError} when the file cannot be read or is invalid (see
 * {@linkcode parsePipeline}).
 */
export async function loadPipeline(
  path: string,
  options: PipelineOptions = {},
): Promise<ResolvedPipeline> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.IsADirectory
      ? "is a directory, expected a YAML file"
      : errorMessage(e);
    throw new ConfigError(path, [{ path: "", line: undefined, message: reason }], { cause: e });
  }
  return parsePipeline(text, path, { baseDir: dirname(resolve(path)), ...options });
}
