/**
 * The assertions the tests use, over `node:assert` (jsr's `@std/assert` cannot be
 * installed on the build machines).
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

/** Asserts that a value is truthy. */
export function assertOk(value: unknown, message?: string): asserts value {
  assert.ok(value, message);
}

/** Asserts |actual - expected| <= tolerance. */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance: number,
  message?: string,
): void {
  const d = Math.abs(actual - expected);
  if (!(d <= tolerance)) {
    throw new assert.AssertionError({
      message: message ??
        `Expected ${actual} to be within ${tolerance} of ${expected} (difference ${d})`,
    });
  }
}

/** Asserts that `fn` throws an error of `type` whose message includes `includes`. */
export function assertThrows(
  fn: () => unknown,
  type: abstract new (...args: never[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, type, includes);
    return e as Error;
  }
  throw new assert.AssertionError({ message: `Expected ${type.name} to be thrown` });
}

/** Asserts that `fn` rejects with an error of `type` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, type, includes);
    return e as Error;
  }
  throw new assert.AssertionError({ message: `Expected ${type.name} to be rejected` });
}

function checkError(
  e: unknown,
  type: abstract new (...args: never[]) => Error,
  includes?: string,
): void {
  if (!(e instanceof type)) {
    throw new assert.AssertionError({
      message: `Expected ${type.name}, got ${e instanceof Error ? e.name : typeof e}: ${e}`,
    });
  }
  if (includes !== undefined && !e.message.includes(includes)) {
    throw new assert.AssertionError({
      message: `Expected message to include ${JSON.stringify(includes)}, got ${
        JSON.stringify(e.message)
      }`,
    });
  }
}
