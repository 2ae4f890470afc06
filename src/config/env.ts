/**
 * `${VAR}` substitution from environment variables inside a pipeline file's string values,
 * before validation: secrets stay out of the file.
 *
 * @module
 */
import { isMap, isPair, isScalar, isSeq, Scalar } from "yaml";
import type { ConfigIssue } from "./config_error.ts";
import { formatPath } from "./config_error.ts";
import { lineOf, type YamlSource } from "./locate.ts";

/** Environment variables by name. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The result of {@linkcode expandEnv}. */
export interface Expansion {
  /** The text with every reference replaced. */
  readonly value: string;
  /** The values that came from the environment (secrets: never to be printed). */
  readonly fromEnv: readonly string[];
  /** What went wrong: `environment variable CAM_PASS is not set`, ... */
  readonly errors: readonly string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${VAR}` with the variable's value and `${VAR:-default}` with the value, or
 * `default` when the variable is unset or empty; `$$` is a literal `$`. An unset variable
 * without a default is an error.
 *
 * @example
 * ```ts
 * expandEnv("rtsp://${U}:${P}@cam/1", { U: "admin", P: "s3cret" }).value;
 * // "rtsp://admin:s3cret@cam/1"
 * ```
 */
export function expandEnv(text: string, env: Env): Expansion {
  let value = "";
  const fromEnv: string[] = [];
  const errors: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== "$") {
      value += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      value += "$";
      i += 2;
      continue;
    }
    if (next !== "{") {
      value += c;
      i++;
      continue;
    }
    const end = text.indexOf("}", i + 2);
    if (end < 0) {
      errors.push('unclosed "${": expected ${NAME} or ${NAME:-default} (write $$ for a $)');
      value += text.slice(i);
      break;
    }
    const inner = text.slice(i + 2, end);
    const sep = inner.indexOf(":-");
    const name = sep < 0 ? inner : inner.slice(0, sep);
    const fallback = sep < 0 ? undefined : inner.slice(sep + 2);
    if (!NAME.test(name)) {
      errors.push(
        `invalid variable reference "\${${name}}": expected \${NAME} or \${NAME:-default}`,
      );
    } else {
      const v = env[name];
      if (v !== undefined && v !== "") {
        value += v;
        fromEnv.push(v);
      } else if (fallback !== undefined) value += fallback;
      else if (v === "") value += "";
      else errors.push(`environment variable ${name} is not set`);
    }
    i = end + 1;
  }
  return { value, fromEnv, errors };
}

/** The result of {@linkcode substituteEnv}. */
export interface Substitution {
  readonly issues: readonly ConfigIssue[];
  /** Text values taken from the environment (numbers and booleans are not secrets). */
  readonly secrets: readonly string[];
  /** Formatted paths that had an issue (so validation does not report them twice). */
  readonly failedPaths: ReadonlySet<string>;
}

/** `1883` -> 1883, `true` -> true, anything else stays text. */
function typedScalar(text: string): string | number | boolean {
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === "true") return true;
  if (text === "false") return false;
  return text;
}

/**
 * Expands references in every string value of a parsed document, in place (keys are left
 * alone). An unquoted value that is exactly one reference takes the type its text has
 * (`port: ${PORT}` with `PORT=1883` is the number 1883); quoted values stay strings.
 */
export function substituteEnv(source: YamlSource, env: Env): Substitution {
  const issues: ConfigIssue[] = [];
  const secrets: string[] = [];
  const failedPaths = new Set<string>();
  const visit = (node: unknown, path: PropertyKey[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        visit(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => visit(item, [...path, index]));
    } else if (isScalar(node) && typeof node.value === "string" && node.value.includes("$")) {
      const original = node.value;
      const expansion = expandEnv(original, env);
      if (expansion.errors.length > 0) {
        const formatted = formatPath(path);
        failedPaths.add(formatted);
        for (const message of expansion.errors) {
          issues.push({ path: formatted, line: lineOf(source, path), message });
        }
        return;
      }
      const whole = node.type === Scalar.PLAIN && /^\$\{[^}]*\}$/.test(original);
      const value = whole ? typedScalar(expansion.value) : expansion.value;
      if (typeof value === "string") secrets.push(...expansion.fromEnv);
      node.value = value;
    }
  };
  visit(source.doc.contents, []);
  return { issues, secrets, failedPaths };
}
