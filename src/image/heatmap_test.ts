import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { tensor } from "../core/tensor.ts";
import { decodeImage, type RgbImage } from "./decode.ts";
import { heatmapImage, heatmapPng, jetColor } from "./heatmap.ts";

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [...img.data.subarray(i, i + 3)];
}

/** A 4 x 5 map rising left to right, with its maximum at (x 3, y 2) and minimum at (0, 0). */
function rampMap() {
  const data = new Float32Array(20);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) data[y * 5 + x] = x + 0.1 * y;
  data[2 * 5 + 3] = 10;
  return tensor([1, 4, 5], data);
}

Deno.test("jetColor() runs from dark blue through cyan, green and yellow to dark red", () => {
  assertEquals(jetColor(0), [0, 0, 128]);
  // Between the ends the 256-entry table is within a step of the formula.
  const near = (got: number[], want: number[]) =>
    assertOk(got.every((v, i) => Math.abs(v - want[i]!) <= 2), `${got} is not near ${want}`);
  near(jetColor(0.25), [0, 128, 255]);
  near(jetColor(0.5), [128, 255, 128]);
  near(jetColor(0.75), [255, 128, 0]);
  assertEquals(jetColor(1), [128, 0, 0]);
  assertEquals(jetColor(-3), jetColor(0));
  assertEquals(jetColor(7), jetColor(1));
  assertEquals(jetColor(NaN), jetColor(0));
});

Deno.test("heatmapPng() draws the maximum hot and the minimum cold", () => {
  const img = decodeImage(heatmapPng(rampMap()), "heatmap.png");
  assertEquals([img.width, img.height], [5, 4]);
  assertEquals(pixel(img, 3, 2), jetColor(1));
  assertEquals(pixel(img, 0, 0), jetColor(0));
  // Everything else is at most 4.3 / 10 of the range: no other pixel is more red than blue.
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 5; x++) {
      if (x === 3 && y === 2) continue;
      const [r, , b] = pixel(img, x, y);
      assertOk(b! > r!, `pixel (${x}, ${y}) is ${pixel(img, x, y)}`);
    }
  }
});

Deno.test("heatmapPng() scales between explicit min and max and clamps outside", () => {
  const map = tensor([2, 2], new Float32Array([-5, 0, 0.5, 9]));
  const img = decodeImage(heatmapPng(map, { min: 0, max: 1 }), "heatmap.png");
  assertEquals(pixel(img, 0, 0), jetColor(0));
  assertEquals(pixel(img, 1, 0), jetColor(0));
  assertEquals(pixel(img, 0, 1), jetColor(0.5));
  assertEquals(pixel(img, 1, 1), jetColor(1));
});

Deno.test("heatmapImage() draws a flat map cold, and values above min = max hot", () => {
  const flat = heatmapImage(tensor([1, 1, 2, 2], new Float32Array(4).fill(3)));
  assertEquals(pixel(flat, 1, 1), jetColor(0));
  const stepped = heatmapImage(tensor([1, 2], new Float32Array([0.2, 0.7])), {
    min: 0.5,
    max: 0.5,
  });
  assertEquals([pixel(stepped, 0, 0), pixel(stepped, 1, 0)], [jetColor(0), jetColor(1)]);
});

Deno.test("heatmapPng() blends over a background resized to the map size", () => {
  // A 10 x 8 background, uniform grey 100, halves to the 5 x 4 map's size.
  const background: RgbImage = { width: 10, height: 8, data: new Uint8Array(240).fill(100) };
  const map = rampMap();
  const half = decodeImage(heatmapPng(map, { background, alpha: 0.5 }), "blend.png");
  assertEquals([half.width, half.height], [5, 4]);
  assertEquals(pixel(half, 3, 2), jetColor(1).map((c) => Math.round(0.5 * c + 50)));
  const none = decodeImage(heatmapPng(map, { background, alpha: 0 }), "bg.png");
  assertEquals(none.data, new Uint8Array(60).fill(100));
  const full = decodeImage(heatmapPng(map, { background, alpha: 1 }), "full.png");
  assertEquals(full.data, decodeImage(heatmapPng(map), "plain.png").data);
  const byDefault = heatmapImage(map, { background });
  assertEquals(pixel(byDefault, 3, 2), jetColor(1).map((c) => Math.round(0.4 * c + 60)));
});

Deno.test("heatmapImage() uses a same-size background pixel for pixel", () => {
  const background: RgbImage = {
    width: 2,
    height: 1,
    data: new Uint8Array([255, 0, 0, 0, 0, 255]),
  };
  const img = heatmapImage(tensor([1, 2], new Float32Array([0, 0])), { background, alpha: 0.25 });
  const c = jetColor(0);
  assertEquals(pixel(img, 0, 0), [255, 0, 0].map((b, i) => Math.round(0.25 * c[i]! + 0.75 * b)));
  assertEquals(pixel(img, 1, 0), [0, 0, 255].map((b, i) => Math.round(0.25 * c[i]! + 0.75 * b)));
});

Deno.test("heatmapPng() rejects bad shapes and options", () => {
  const map = tensor([2, 2]);
  assertThrows(() => heatmapPng(tensor([2, 2, 2])), RangeError, "Cannot draw heatmap of shape");
  assertThrows(() => heatmapPng(tensor([4])), RangeError, "expected H x W");
  assertThrows(() => heatmapPng(map, { min: 2, max: 1 }), RangeError, "min <= max");
  assertThrows(() => heatmapPng(map, { max: Infinity }), RangeError, "finite");
  assertThrows(() => heatmapPng(map, { alpha: 1.5 }), RangeError, "alpha 1.5");
  assertThrows(
    () => heatmapPng(map, { background: { width: 2, height: 2, data: new Uint8Array(5) } }),
    RangeError,
    "needs 12 bytes",
  );
});
