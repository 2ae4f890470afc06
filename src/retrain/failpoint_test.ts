import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { registryFailpoint } from "./failpoint.ts";

Deno.test("registryFailpoint() is off when unset", () => {
  assertEquals(registryFailpoint(undefined), undefined);
  assertEquals(registryFailpoint(""), undefined);
});

Deno.test("registryFailpoint() fires only at its step", () => {
  let kills = 0;
  const hook = registryFailpoint("registry:pointer:temp-written", () => kills++)!;
  hook("add:copied");
  hook("pointer:renamed");
  assertEquals(kills, 0);
  hook("pointer:temp-written");
  assertEquals(kills, 1);
});

Deno.test("registryFailpoint() refuses an unknown step", () => {
  assertThrows(() => registryFailpoint("registry:nowhere"), RangeError, "pointer:temp-written");
  assertThrows(() => registryFailpoint("pointer:renamed"), RangeError, "expected registry:<step>");
});
