import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { FrameAssembler } from "./frame_assembler.ts";

Deno.test("FrameAssembler() cuts chunks of any size into exact frames", () => {
  const a = new FrameAssembler(4);
  assertEquals(a.push(Uint8Array.of(1, 2, 3)), []);
  assertEquals(a.pendingBytes, 3);
  assertEquals(a.push(Uint8Array.of(4, 5)), [Uint8Array.of(1, 2, 3, 4)]);
  assertEquals(a.push(Uint8Array.of(6, 7, 8, 9, 10, 11, 12, 13)), [
    Uint8Array.of(5, 6, 7, 8),
    Uint8Array.of(9, 10, 11, 12),
  ]);
  assertEquals(a.pendingBytes, 1);
  a.reset();
  assertEquals(a.push(Uint8Array.of(0, 0, 0, 0)), [new Uint8Array(4)]);
});

Deno.test("FrameAssembler() returns frames that later chunks do not overwrite", () => {
  const a = new FrameAssembler(2);
  const [first] = a.push(Uint8Array.of(1, 2));
  a.push(Uint8Array.of(3, 4));
  assertEquals(first, Uint8Array.of(1, 2));
  assertThrows(() => new FrameAssembler(0), RangeError, "Cannot assemble frames");
});
