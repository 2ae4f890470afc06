import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { readNpy } from "../core/npy.ts";
import { maxAbsDiff, tensor } from "../core/tensor.ts";
import { resizeBilinear } from "./resize.ts";

const FIXTURES = new URL("../../tests/fixtures/resize/", import.meta.url);

Deno.test("resizeBilinear() matches PyTorch half-pixel semantics on a hand-computed upscale", () => {
  // 2x2 -> 4x4: source coordinates (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75,
  // 1.25 (upper neighbour clamped), so each axis interpolates at 0, 0.25, 0.75, 1.
  const out = resizeBilinear(tensor([1, 1, 2, 2], new Float32Array([0, 1, 2, 3])), [4, 4]);
  assertEquals(out.shape, [1, 1, 4, 4]);
  const r = [0, 0.25, 0.75, 1];
  assertEquals([...out.data], r.flatMap((y) => r.map((x) => 2 * y + x)));
});

Deno.test("resizeBilinear() samples rather than averages when downscaling", () => {
  const row = tensor([1, 1, 1, 4], new Float32Array([0, 1, 2, 3]));
  // Scale 2: sources 0.5 and 2.5, halfway between neighbours.
  assertEquals([...resizeBilinear(row, [1, 2]).data], [0.5, 2.5]);
  const six = tensor([1, 1, 1, 6], new Float32Array([10, 11, 12, 13, 14, 15]));
  // Scale 3: sources 1 and 4 land on input pixels; their neighbours are ignored.
  assertEquals([...resizeBilinear(six, [1, 2]).data], [11, 14]);
});

Deno.test("resizeBilinear() resizes every plane of a batch independently", () => {
  const a = new Float32Array([0, 1, 2, 3]);
  const t = tensor([2, 2, 2, 2], new Float32Array([...a, ...a.map((v) => v + 10), ...a, ...a]));
  const out = resizeBilinear(t, [4, 4]);
  assertEquals(out.shape, [2, 2, 4, 4]);
  for (let i = 0; i < 16; i++) assertEquals(out.data[16 + i], out.data[i]! + 10);
  assertEquals(out.data.subarray(32, 48), out.data.subarray(0, 16));
});

Deno.test("resizeBilinear() accepts H x W and C x H x W tensors", () => {
  const hw = resizeBilinear(tensor([2, 2], new Float32Array([0, 1, 2, 3])), [3, 1]);
  assertEquals(hw.shape, [3, 1]);
  const chw = resizeBilinear(tensor([3, 2, 2]), [5, 7]);
  assertEquals(chw.shape, [3, 5, 7]);
});

Deno.test("resizeBilinear() returns a copy for a same-size resize", () => {
  const t = tensor([1, 1, 2, 3], new Float32Array([1, 2, 3, 4, 5, 6]));
  const out = resizeBilinear(t, [2, 3]);
  assertEquals(out.data, t.data);
  assertOk(out.data !== t.data);
});

Deno.test("resizeBilinear() rejects bad sizes and shapes", () => {
  const t = tensor([1, 1, 2, 2]);
  assertThrows(() => resizeBilinear(t, [0, 4]), RangeError, "Cannot resize to 0x4");
  assertThrows(() => resizeBilinear(t, [2.5, 4]), RangeError, "positive integer");
  assertThrows(() => resizeBilinear(tensor([4]), [2, 2]), RangeError, "Cannot resize a tensor");
  assertThrows(() => resizeBilinear(tensor([1, 0, 3]), [2, 2]), RangeError, "H, W >= 1");
});

Deno.test("resizeBilinear() matches torch F.interpolate on the fixtures", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(new URL("cases.json", FIXTURES))) as {
    cases: { name: string; input_shape: number[]; size: [number, number] }[];
  };
  assertOk(manifest.cases.length >= 10);
  for (const { name, input_shape, size } of manifest.cases) {
    const input = await readNpy(new URL(`${name}_input.npy`, FIXTURES).pathname);
    const want = await readNpy(new URL(`${name}_output.npy`, FIXTURES).pathname);
    assertEquals(input.shape, input_shape);
    const got = resizeBilinear(input, size);
    assertEquals(got.shape, want.shape, name);
    const diff = maxAbsDiff(got, want);
    assertOk(diff <= 1e-6, `${name}: max difference ${diff}`);
  }
});
