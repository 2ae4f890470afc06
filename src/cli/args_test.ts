import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { engineOptionsFrom, positiveIntegerFlag } from "./args.ts";

Deno.test("positiveIntegerFlag() takes a positive integer and names the flag otherwise", () => {
  assertEquals(positiveIntegerFlag("batch", "8"), 8);
  for (const bad of ["0", "-1", "1.5", "x", ""]) {
    assertThrows(
      () => positiveIntegerFlag("batch", bad),
      InputError,
      `Cannot use --batch ${bad}: expected a positive integer`,
    );
  }
});

Deno.test("engineOptionsFrom() checks --threads", () => {
  assertEquals(engineOptionsFrom({ threads: "2" }).intraOpThreads, 2);
  assertThrows(
    () => engineOptionsFrom({ threads: "0" }),
    InputError,
    "Cannot use --threads 0: expected a positive integer",
  );
});
