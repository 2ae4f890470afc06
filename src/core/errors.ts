/**
 * Domain errors that callers catch and report.
 *
 * @module
 */

/**
 * A model file could not be read: it is missing, corrupt, truncated, of an unknown format,
 * or does not match the architecture (missing key, wrong shape). The message names the
 * file and the problem.
 */
export class ModelFormatError extends Error {
  /** The file or directory that failed to load. */
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`Cannot load model ${path}: ${message}`, options);
    this.name = "ModelFormatError";
    this.path = path;
  }
}

/** A user-facing input (an image, a `.npy` file, a flag) is unusable. */
export class InputError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InputError";
  }
}

/**
 * The message of a thrown value: an `Error`'s `message`, anything else as a string. For log
 * lines and published reasons, where a stack would be noise.
 *
 * @example
 * ```ts
 * import { errorMessage } from "./errors.ts";
 *
 * errorMessage(new Error("disk full")); // "disk full"
 * errorMessage("timeout"); // "timeout"
 * ```
 */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
