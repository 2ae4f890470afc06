import type { Frame } from "../core/frame.ts";
import { stack } from "../core/tensor.ts";
import { imageToTensor } from "../image/decode.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { BatchPacker, framesToTensor } from "./batch_tensor.ts";

function frame(seq: number, width: number, height: number): Frame {
  const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7 + seq * 13) % 256);
  return { camera: "cam", seq, capturedAt: 0, width, height, rgb };
}

Deno.test("framesToTensor() makes an N x 3 x H x W batch of byte / 255, channel-planar", () => {
  const f = frame(0, 2, 1);
  f.rgb.set([0, 51, 255, 255, 102, 0]);
  const t = framesToTensor([f]);
  assertEquals(t.shape, [1, 3, 1, 2]);
  assertEquals([...t.data], [0, 1, 0.2, 0.4, 1, 0].map((v) => Math.fround(v)));
});

Deno.test("framesToTensor() matches imageToTensor() bit for bit", () => {
  const frames = [frame(0, 5, 3), frame(1, 5, 3), frame(2, 5, 3)];
  const expected = stack(
    frames.map((f) => {
      const t = imageToTensor({ width: f.width, height: f.height, data: f.rgb });
      return { shape: t.shape.slice(1), data: t.data };
    }),
  );
  const t = framesToTensor(frames);
  assertEquals(t.shape, expected.shape);
  assertEquals(t.data, expected.data);
});

Deno.test("framesToTensor() rejects frames of different sizes or short buffers", () => {
  assertThrows(() => framesToTensor([]), RangeError, "Cannot batch frames: no frames given");
  assertThrows(
    () => framesToTensor([frame(0, 2, 2), frame(1, 3, 2)]),
    RangeError,
    "Cannot batch frames: frame cam#1 is 3x2, expected 2x2",
  );
  const short = { ...frame(4, 2, 2), rgb: new Uint8Array(5) };
  assertThrows(() => framesToTensor([short]), RangeError, "holds 5 bytes, expected 12");
});

Deno.test("BatchPacker.pack() matches framesToTensor() and reuses its buffer", () => {
  const packer = new BatchPacker();
  const four = [frame(0, 5, 3), frame(1, 5, 3), frame(2, 5, 3), frame(3, 5, 3)];
  const a = packer.pack(four);
  assertEquals(a.shape, [4, 3, 3, 5]);
  assertEquals(a.data, framesToTensor(four).data);
  assertEquals(packer.capacity, 4 * 3 * 15 * 4);
  const b = packer.pack(four.slice(1, 3));
  assertEquals(b.shape, [2, 3, 3, 5]);
  assertEquals(b.data, framesToTensor(four.slice(1, 3)).data);
  assertEquals(b.data.buffer === a.data.buffer, true);
  assertEquals(packer.capacity, 4 * 3 * 15 * 4);
  assertThrows(() => packer.pack([]), RangeError, "no frames given");
});

Deno.test("framesToTensor() gives the same values for aligned, unaligned and odd-sized frames", () => {
  for (const [w, h] of [[8, 4], [5, 3], [7, 1]] as const) {
    const f = frame(3, w, h);
    const backing = new Uint8Array(f.rgb.length + 1);
    backing.set(f.rgb, 1);
    const unaligned = { ...f, rgb: backing.subarray(1) };
    const expected = imageToTensor({ width: w, height: h, data: f.rgb }).data;
    assertEquals(framesToTensor([f]).data, expected);
    assertEquals(framesToTensor([unaligned]).data, expected);
  }
});
