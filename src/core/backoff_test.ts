import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { Backoff } from "./backoff.ts";

Deno.test("Backoff() doubles from initialMs and stops at maxMs", () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.5 });
  assertEquals([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
  assertEquals(b.attempt, 6);
  b.reset();
  assertEquals(b.next(), 100);
});

Deno.test("Backoff() jitters by ±20 % and never exceeds maxMs", () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
  assertEquals([low.next(), low.next()], [80, 160]);
  assertEquals([high.next(), high.next()], [120, 240]);
  for (let i = 0; i < 5; i++) high.next();
  assertEquals(high.next(), 1000);
  assertThrows(() => new Backoff({ initialMs: 10, maxMs: 5 }), RangeError, "Cannot make backoff");
});
