import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { InputError } from "../core/errors.ts";
import { engineOptionsFrom, imageSizeFlag, positiveIntegerFlag, sizeFlag } from "./args.ts";

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

Deno.test("sizeFlag() and imageSizeFlag() read --size and --image-size", () => {
  assertEquals([sizeFlag("S"), sizeFlag("m")], ["s", "m"]);
  assertThrows(() => sizeFlag("l"), InputError, "Cannot use --size l: expected s or m");
  assertEquals([imageSizeFlag("256"), imageSizeFlag("256x320")], [[256, 256], [256, 320]]);
  assertThrows(
    () => imageSizeFlag("256x"),
    InputError,
    "Cannot use --image-size 256x: expected HxW (e.g. 256x256) or one number",
  );
});

Deno.test("engineOptionsFrom() defaults to the pipeline's model engine and providers", () => {
  const options = engineOptionsFrom({});
  assertEquals(options.type, DEFAULTS.model.engine);
  assertEquals(options.executionProviders, [...DEFAULTS.model.execution_providers]);
});

Deno.test("engineOptionsFrom() reads --precision and names a bad value", () => {
  assertEquals(engineOptionsFrom({}).precision, undefined);
  assertEquals(engineOptionsFrom({ precision: "int8" }).precision, "int8");
  assertEquals(engineOptionsFrom({ precision: "FP16" }).precision, "fp16");
  assertThrows(
    () => engineOptionsFrom({ precision: "int4" }),
    InputError,
    "Cannot use --precision int4: expected fp32, fp16 or int8",
  );
});
