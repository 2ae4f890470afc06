import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { assertNonNegativeInteger, assertPositiveInteger } from "./check.ts";
import { errorMessage } from "./errors.ts";

Deno.test("assertPositiveInteger() returns integers >= 1 and names the value otherwise", () => {
  assertEquals(assertPositiveInteger(3, "size"), 3);
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assertThrows(
      () => assertPositiveInteger(bad, "queue size", "Cannot open queue"),
      RangeError,
      `Cannot open queue: queue size must be a positive integer, got ${bad}`,
    );
  }
});

Deno.test("assertNonNegativeInteger() accepts 0 and refuses fractions and negatives", () => {
  assertEquals(assertNonNegativeInteger(0, "keep"), 0);
  assertThrows(
    () => assertNonNegativeInteger(-1, "keep"),
    RangeError,
    "keep must be a non-negative integer, got -1",
  );
  assertThrows(() => assertNonNegativeInteger(0.5, "keep"), RangeError, "got 0.5");
});

Deno.test("errorMessage() reads an Error's message and stringifies anything else", () => {
  assertEquals(errorMessage(new TypeError("bad")), "bad");
  assertEquals(errorMessage("plain"), "plain");
  assertEquals(errorMessage(42), "42");
});
