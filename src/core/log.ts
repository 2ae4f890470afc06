/**
 * A small structured logger: one line per event on stderr, `level message key=value ...`.
 *
 * @module
 */

/** Log levels, in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Where log lines go; tests pass their own sink to capture lines. */
export type LogSink = (line: string) => void;

/** A logger with a fixed minimum level and an optional context prefix. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry `scope` before the message. */
  child(scope: string): Logger;
  /** The same logger (sink, scope) with another minimum level. */
  withLevel(level: LogLevel): Logger;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  level?: LogLevel;
  /** Receives each formatted line. Default: write to stderr. */
  sink?: LogSink;
  /** A prefix such as `infer` or `camera line-1`. */
  scope?: string;
}

function formatValue(v: unknown): string {
  if (typeof v === "string") return /\s|"/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

const encoder = new TextEncoder();

function stderrSink(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Makes a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? "info"];
  const sink = options.sink ?? stderrSink;
  const scope = options.scope;
  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const parts = [level.padEnd(5), scope ? `[${scope}]` : "", message];
    for (const [k, v] of Object.entries(fields ?? {})) parts.push(`${k}=${formatValue(v)}`);
    sink(parts.filter((p) => p !== "").join(" "));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    withLevel: (level) => createLogger({ ...options, level, sink }),
    child: (s) =>
      createLogger({
        ...options,
        scope: scope ? `${scope}/${s}` : s,
        sink,
        level: options.level ?? "info",
      }),
  };
}
