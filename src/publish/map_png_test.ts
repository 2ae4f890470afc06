import { InputError } from "../core/errors.ts";
import { tensor } from "../core/tensor.ts";
import { decodeImage } from "../image/decode.ts";
import { resizeBilinear } from "../image/resize.ts";
import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { decodeMapPng, encodeMapPng, MAP_TEXT_KEYWORD, readPngText } from "./map_png.ts";

/** A smooth map with a bump, like an anomaly map: values in about [0.1, 3.1]. */
function bumpMap(h: number, w: number): Float32Array {
  return Float32Array.from({ length: h * w }, (_, i) => {
    const y = Math.floor(i / w) / h - 0.6;
    const x = (i % w) / w - 0.3;
    return 0.1 + 3 * Math.exp(-(x * x + y * y) * 20);
  });
}

const OPTIONS = { camera: "cam-1", seq: 42, capturedAt: 1_700_000_000_123 };

Deno.test("encodeMapPng() de-quantises within 1/255 of the range at the map's own size", () => {
  const data = bumpMap(48, 64);
  const { png, header } = encodeMapPng(tensor([1, 48, 64], data), OPTIONS);
  assertEquals([header.width, header.height], [64, 48]);
  const decoded = decodeMapPng(png);
  assertEquals(decoded.header, header);
  const range = header.max - header.min;
  assertAlmostEquals(header.min, Math.min(...data), 1e-7);
  assertAlmostEquals(header.max, Math.max(...data), 1e-7);
  for (let i = 0; i < data.length; i++) {
    assertAlmostEquals(decoded.values[i]!, data[i]!, range / 255);
  }
});

Deno.test("encodeMapPng() resizes bilinearly to the configured size", () => {
  const data = bumpMap(64, 64);
  const { png, header } = encodeMapPng(tensor([1, 1, 64, 64], data), {
    ...OPTIONS,
    size: [24, 32],
  });
  const img = decodeImage(png, "map");
  assertEquals([img.width, img.height], [32, 24]);
  const expected = resizeBilinear(tensor([64, 64], data), [24, 32]).data;
  const values = decodeMapPng(png).values;
  const range = header.max - header.min;
  for (let i = 0; i < expected.length; i++) {
    assertAlmostEquals(values[i]!, expected[i]!, range / 255);
  }
});

Deno.test("encodeMapPng() writes an 8-bit greyscale PNG with the header in a tEXt chunk", () => {
  const { png } = encodeMapPng(tensor([16, 16], bumpMap(16, 16)), OPTIONS);
  // IHDR: bit depth at byte 24, colour type at byte 25
  assertEquals([png[24], png[25]], [8, 0]);
  const text = readPngText(png).get(MAP_TEXT_KEYWORD);
  assertOk(text !== undefined);
  const header = JSON.parse(text);
  assertEquals(
    [header.v, header.encoding, header.camera, header.seq, header.captured_at_ms],
    [1, "png-gray8-linear", "cam-1", 42, 1_700_000_000_123],
  );
});

Deno.test("encodeMapPng() encodes a constant map as level 0 with min = max", () => {
  const { png, header } = encodeMapPng(tensor([8, 8], new Float32Array(64).fill(0.7)), OPTIONS);
  assertAlmostEquals(header.min, 0.7, 1e-6);
  assertEquals(header.max, header.min);
  assertOk(decodeMapPng(png).values.every((v) => Math.abs(v - header.min) < 1e-6));
});

Deno.test("encodeMapPng() escapes non-ASCII camera names in the header", () => {
  const { png } = encodeMapPng(tensor([4, 4], bumpMap(4, 4)), { ...OPTIONS, camera: "Förderband" });
  assertEquals(decodeMapPng(png).header.camera, "Förderband");
});

Deno.test("encodeMapPng() rejects a map that is not one plane", () => {
  assertThrows(
    () => encodeMapPng(tensor([2, 4, 4]), OPTIONS),
    RangeError,
    "Cannot encode anomaly map of shape [2, 4, 4]",
  );
});

Deno.test("decodeMapPng() rejects a PNG without the header", () => {
  const { png } = encodeMapPng(tensor([4, 4], bumpMap(4, 4)), OPTIONS);
  const bad = png.slice();
  bad[37] = "X".charCodeAt(0); // the tEXt chunk type becomes XEXt: an unknown chunk
  assertThrows(() => decodeMapPng(bad, "t/map"), InputError, "Cannot decode t/map: no tEXt chunk");
  assertThrows(() => decodeMapPng(new Uint8Array(4)), InputError, "not a PNG file");
});

Deno.test("encodeMapPng() round-trips maps from 1x1 to 256x256 (zlib windows 9 to 15 bits)", () => {
  for (const [h, w] of [[1, 1], [8, 8], [64, 64], [256, 256]] as const) {
    const data = bumpMap(h, w);
    const { png, header } = encodeMapPng(tensor([h, w], data), OPTIONS);
    const decoded = decodeMapPng(png);
    const range = header.max - header.min;
    for (let i = 0; i < data.length; i++) {
      assertAlmostEquals(decoded.values[i]!, data[i]!, range / 255 + 1e-7);
    }
  }
});
