/**
 * Argument checks shared by every stage: one wording, one argument order.
 *
 * @example
 * ```ts
 * import { assertPositiveInteger } from "./check.ts";
 *
 * const size = assertPositiveInteger(8, "queue size", "Cannot open queue");
 * ```
 *
 * @module
 */

/**
 * Returns `value` when it is an integer >= 1.
 *
 * @param value the number to check.
 * @param name what the number is, as the message names it (`"queue size"`).
 * @param action what the caller was doing, "Cannot <action>" (default `"Cannot use value"`).
 * @throws {RangeError} `<action>: <name> must be a positive integer, got <value>`.
 */
export function assertPositiveInteger(
  value: number,
  name: string,
  action = "Cannot use value",
): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${action}: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Returns `value` when it is an integer >= 0.
 *
 * @param value the number to check.
 * @param name what the number is, as the message names it.
 * @param action what the caller was doing, "Cannot <action>" (default `"Cannot use value"`).
 * @throws {RangeError} `<action>: <name> must be a non-negative integer, got <value>`.
 */
export function assertNonNegativeInteger(
  value: number,
  name: string,
  action = "Cannot use value",
): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${action}: ${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}
