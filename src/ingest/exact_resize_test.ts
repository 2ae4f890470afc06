import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { imageToTensor, tensorToImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import { resizeRgbExact } from "./exact_resize.ts";

Deno.test("resizeRgbExact() matches decode.ts + resizeBilinear, as predict resizes", () => {
  const from = { width: 37, height: 23 };
  const rgb = Uint8Array.from({ length: 37 * 23 * 3 }, (_, i) => (i * 97 + (i >> 3)) & 255);
  for (const to of [{ width: 16, height: 16 }, { width: 64, height: 40 }]) {
    const expected = tensorToImage(
      resizeBilinear(imageToTensor({ ...from, data: rgb }), [to.height, to.width]),
    ).data;
    assertEquals(resizeRgbExact(rgb, from, to), expected);
  }
});

Deno.test("resizeRgbExact() passes a same-size frame through and checks lengths", () => {
  const rgb = new Uint8Array(2 * 2 * 3);
  assertEquals(resizeRgbExact(rgb, { width: 2, height: 2 }, { width: 2, height: 2 }) === rgb, true);
  assertThrows(
    () => resizeRgbExact(rgb, { width: 3, height: 2 }, { width: 1, height: 1 }),
    RangeError,
    "Cannot resize frame",
  );
});
