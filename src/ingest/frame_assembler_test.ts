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

/** A BYOB read: copies `bytes` into `view` and transfers its buffer, as a byte stream does. */
function byobRead(view: Uint8Array, bytes: number[]): Uint8Array {
  view.set(bytes);
  const offset = view.byteOffset; // a transferred view reads 0
  const buffer = (view.buffer as ArrayBuffer).transfer();
  return new Uint8Array(buffer, offset, bytes.length);
}

Deno.test("FrameAssembler.commit() assembles frames read into readView()", () => {
  const a = new FrameAssembler(4);
  assertEquals(a.readView().length, 4);
  assertEquals(a.commit(byobRead(a.readView(), [1, 2, 3])), undefined);
  assertEquals(a.pendingBytes, 3);
  assertEquals(a.readView().length, 1);
  const frame = a.commit(byobRead(a.readView(), [4]));
  assertEquals(frame, Uint8Array.of(1, 2, 3, 4));
  assertEquals(a.pendingBytes, 0);
  const next = a.commit(byobRead(a.readView(), [5, 6, 7, 8]));
  assertEquals(next, Uint8Array.of(5, 6, 7, 8));
  assertEquals(frame, Uint8Array.of(1, 2, 3, 4));
  assertThrows(() => a.commit(new Uint8Array(2)), RangeError, "not the one readView() gave");
});

Deno.test("FrameAssembler.commit() reads frames from a real byte stream", async () => {
  const bytes = Uint8Array.from({ length: 30 }, (_, i) => i);
  const stream = new ReadableStream({
    type: "bytes",
    start(controller) {
      for (let p = 0; p < bytes.length; p += 7) controller.enqueue(bytes.slice(p, p + 7));
      controller.close();
    },
  });
  const reader = stream.getReader({ mode: "byob" });
  const a = new FrameAssembler(12);
  const frames: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read(a.readView());
    if (done) break;
    const frame = a.commit(value);
    if (frame !== undefined) frames.push(frame);
  }
  assertEquals(frames, [bytes.slice(0, 12), bytes.slice(12, 24)]);
  assertEquals(a.pendingBytes, 6);
});
