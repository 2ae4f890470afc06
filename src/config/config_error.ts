/**
 * The error a pipeline file raises when it cannot be used: every problem found, each with
 * the key's path and its line in the YAML file.
 *
 * @module
 */

/** One problem in a pipeline file. */
export interface ConfigIssue {
  /** The key's path as the user reads it: `cameras[1].fps`, `mqtt.qos`; `""` for the file. */
  readonly path: string;
  /** 1-based line in the YAML file, when known (not for objects built in code). */
  readonly line: number | undefined;
  /** What is wrong, lower case: `expected a positive number`. */
  readonly message: string;
}

/**
 * Writes a key path the way the docs and messages do: `cameras[1].roi.width`. Keys that
 * are not plain words are quoted: `mqtt["bad key"]`.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else {
      const key = String(segment);
      if (/^[A-Za-z0-9_-]+$/.test(key)) out += out === "" ? key : `.${key}`;
      else out += `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}

/**
 * Formats one issue as `path (line N): message`; without a path (a YAML syntax error, a
 * file that is not a mapping) `line N: message`.
 */
export function formatIssue(issue: ConfigIssue): string {
  if (issue.path === "") {
    return issue.line !== undefined ? `line ${issue.line}: ${issue.message}` : issue.message;
  }
  const where = issue.line !== undefined ? ` (line ${issue.line})` : "";
  return `${issue.path}${where}: ${issue.message}`;
}

/**
 * A pipeline file is unusable: a YAML syntax error, an unknown key, a value of the wrong
 * type or range, a missing environment variable. `issues` lists every problem found, in
 * file order; the message holds them all, one per line:
 *
 * ```text
 * Cannot load pipeline line3.yaml: 2 problems
 *   cameras[0].fsp (line 9): unknown key (did you mean "fps"?)
 *   mqtt.qos (line 30): expected 0, 1 or 2
 * ```
 *
 * Messages never quote secret values.
 */
export class ConfigError extends Error {
  /** The file (or the name given to {@linkcode parsePipeline}) that failed. */
  readonly file: string;
  /** Every problem found, sorted by line. */
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[], options?: ErrorOptions) {
    const lines = issues.map(formatIssue);
    const body = lines.length === 1
      ? lines[0]!
      : `${lines.length} problems\n${lines.map((l) => `  ${l}`).join("\n")}`;
    super(`Cannot load pipeline ${file}: ${body}`, options);
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }
}
