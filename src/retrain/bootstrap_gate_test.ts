import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { BootstrapGate } from "./bootstrap_gate.ts";

Deno.test("BootstrapGate.admit() stores at most one frame per interval of capture time", () => {
  const gate = new BootstrapGate({ needed: 3, intervalMs: 1000, retryMs: 60_000 });
  assertEquals([0, 500, 1000, 1999, 2000].map((t) => gate.admit(t)), [
    true,
    false,
    true,
    false,
    true,
  ]);
});

Deno.test("BootstrapGate.start() starts once with enough frames, again only after the retry delay", () => {
  const gate = new BootstrapGate({ needed: 3, intervalMs: 0, retryMs: 60_000 });
  assertEquals(gate.start(2, 0), false);
  assertEquals(gate.start(3, 0), true);
  assertEquals([gate.started, gate.start(9, 1)], [true, false]);
  gate.ended(1000);
  assertEquals([gate.started, gate.start(9, 60_999), gate.start(9, 61_000)], [false, false, true]);
  assertThrows(
    () => new BootstrapGate({ needed: 0, intervalMs: 0, retryMs: 0 }),
    RangeError,
    "bootstrapFrames must be a positive integer",
  );
});
