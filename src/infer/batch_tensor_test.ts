import type { Frame } from "../core/frame.ts";
import { stack } from "../core/tensor.ts";
import { imageToTensor } from "../image/decode.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { framesToTensor } from "./batch_tensor.ts";

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
