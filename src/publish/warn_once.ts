/**
 * Warnings that would repeat with every message (a broker refusing a topic, a frame that
 * cannot be encoded): logged once per key, so a steady fault does not flood the log.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";

/** The most keys remembered; past it, new keys are logged every time. */
const MAX_KEYS = 1000;

/**
 * Logs a warning the first time its key is seen. `Error` values among the fields are
 * logged as their message, passed through `redact`.
 *
 * @example
 * ```ts
 * import { createLogger } from "../core/log.ts";
 * import { WarnOnce } from "./warn_once.ts";
 *
 * const warn = new WarnOnce(createLogger());
 * warn.warn("stats", "Cannot publish stats", { error: new Error("boom") }); // logged
 * warn.warn("stats", "Cannot publish stats", { error: new Error("boom") }); // not logged
 * ```
 */
export class WarnOnce {
  readonly #log: Logger;
  readonly #redact: (text: string) => string;
  readonly #seen = new Set<string>();

  constructor(log: Logger, redact: (text: string) => string = (text) => text) {
    this.#log = log;
    this.#redact = redact;
  }

  /** Logs `message` with `fields` at warn level unless `key` was logged before. */
  warn(key: string, message: string, fields: Record<string, unknown>): void {
    if (this.#seen.has(key)) return;
    if (this.#seen.size < MAX_KEYS) this.#seen.add(key);
    const clean = Object.fromEntries(
      Object.entries(fields).map((
        [k, v],
      ) => [k, v instanceof Error ? this.#redact(errorMessage(v)) : v]),
    );
    this.#log.warn(message, clean);
  }
}
