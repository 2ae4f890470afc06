import {
  assertEquals,
  assertOk as assert,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import { deflateSync, inflateSync } from "node:zlib";
import jpeg from "jpeg-js";
import { InputError } from "../core/errors.ts";
import {
  decodeImage,
  encodePng,
  imageToTensor,
  readImage,
  type RgbImage,
  sniffImageFormat,
  tensorToImage,
} from "./decode.ts";

// ---- A minimal PNG writer, so that every colour type and depth can be tested. ----

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A PNG from raw scanlines (no filter byte); `extra` chunks go between IHDR and IDAT. */
function makePng(
  header: { width: number; height: number; depth: number; colorType: number },
  rows: Uint8Array[],
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, header.width);
  view.setUint32(4, header.height);
  ihdr.set([header.depth, header.colorType, 0, 0, 0], 8);
  const raw = concat(rows.flatMap((r) => [new Uint8Array([0]), r]));
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/**
 * A hand-made 16x8 greyscale baseline JPEG: two flat 8x8 blocks whose DC coefficients
 * decode to 144 (left) and 128 (right). Huffman tables hold one code each: DC category 5
 * and AC end-of-block.
 */
function greyJpeg(): Uint8Array {
  const segment = (marker: number, body: number[]) => [
    0xff,
    marker,
    (body.length + 2) >> 8,
    (body.length + 2) & 0xff,
    ...body,
  ];
  const counts = (n: number) => [n, ...new Array(15).fill(0)];
  return new Uint8Array([
    0xff,
    0xd8,
    ...segment(0xdb, [0x00, ...new Array(64).fill(8)]),
    ...segment(0xc0, [8, 0, 8, 0, 16, 1, 1, 0x11, 0]),
    ...segment(0xc4, [0x00, ...counts(1), 0x05, 0x10, ...counts(1), 0x00]),
    ...segment(0xda, [1, 1, 0x00, 0, 63, 0]),
    // '0' '10000' (DC +16) '0' (EOB), '0' '01111' (DC -16) '0' (EOB), padded with ones.
    0b01000000,
    0b01111011,
    0xff,
    0xd9,
  ]);
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [...img.data.subarray(i, i + 3)];
}

function rgbJpeg(width: number, height: number, seed = 1): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (i % 4 === 3) ? 255 : (s >>> 16) & 0xff;
  }
  return new Uint8Array(jpeg.encode({ width, height, data }, 90).data);
}

Deno.test("sniffImageFormat() recognises PNG and JPEG by magic bytes", () => {
  assertEquals(
    sniffImageFormat(makePng({ width: 1, height: 1, depth: 8, colorType: 0 }, [
      new Uint8Array([7]),
    ])),
    "png",
  );
  assertEquals(sniffImageFormat(greyJpeg()), "jpeg");
  assertEquals(sniffImageFormat(new TextEncoder().encode("GIF89a")), undefined);
  assertEquals(sniffImageFormat(new Uint8Array(0)), undefined);
});

Deno.test("decodeImage() round-trips an RGB PNG written by encodePng()", () => {
  const img: RgbImage = {
    width: 3,
    height: 2,
    data: Uint8Array.from({ length: 18 }, (_, i) => i * 13),
  };
  const back = decodeImage(encodePng(img), "rgb.png");
  assertEquals(back, { width: 3, height: 2, data: img.data });
});

Deno.test("encodePng() with the sub filter writes the same pixels, sub-filtered", () => {
  const width = 40;
  const height = 30;
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37 + (i >> 7)) % 256);
  const img: RgbImage = { width, height, data };
  const sub = encodePng(img, { filter: "sub" });
  assertEquals(decodeImage(sub, "sub.png"), img);
  assertEquals(decodeImage(encodePng(img, { filter: "adaptive" }), "adaptive.png"), img);
  // Every row of the sub-filtered file starts with filter type 1.
  const view = new DataView(sub.buffer, sub.byteOffset, sub.byteLength);
  let at = 8;
  const idat: Uint8Array[] = [];
  while (at < sub.length) {
    const len = view.getUint32(at);
    if (String.fromCharCode(...sub.subarray(at + 4, at + 8)) === "IDAT") {
      idat.push(sub.subarray(at + 8, at + 8 + len));
    }
    at += 12 + len;
  }
  const raw = inflateSync(Uint8Array.from(idat.flatMap((c) => [...c])));
  for (let row = 0; row < height; row++) assertEquals(raw[row * (width * 3 + 1)], 1);
});

Deno.test("decodeImage() copies greyscale PNG samples to all three channels", () => {
  const png = makePng({ width: 2, height: 1, depth: 8, colorType: 0 }, [
    new Uint8Array([10, 200]),
  ]);
  assertEquals(decodeImage(png, "grey.png").data, new Uint8Array([10, 10, 10, 200, 200, 200]));
});

Deno.test("decodeImage() drops alpha from RGBA and grey+alpha PNGs", () => {
  const rgba = makePng({ width: 2, height: 1, depth: 8, colorType: 6 }, [
    new Uint8Array([1, 2, 3, 0, 4, 5, 6, 128]),
  ]);
  assertEquals(decodeImage(rgba, "rgba.png").data, new Uint8Array([1, 2, 3, 4, 5, 6]));
  const greyAlpha = makePng({ width: 2, height: 1, depth: 8, colorType: 4 }, [
    new Uint8Array([50, 0, 60, 255]),
  ]);
  assertEquals(decodeImage(greyAlpha, "ga.png").data, new Uint8Array([50, 50, 50, 60, 60, 60]));
});

Deno.test("decodeImage() looks up palette PNG indices, 8-bit and 2-bit", () => {
  const plte = chunk("PLTE", new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255]));
  const trns = chunk("tRNS", new Uint8Array([0, 255, 255]));
  const png8 = makePng({ width: 3, height: 1, depth: 8, colorType: 3 }, [
    new Uint8Array([2, 0, 1]),
  ], [plte, trns]);
  assertEquals(
    decodeImage(png8, "p8.png").data,
    new Uint8Array([0, 0, 255, 255, 0, 0, 0, 255, 0]),
  );
  // Four 2-bit indices 1, 2, 0, 1 packed into one byte: 01 10 00 01.
  const png2 = makePng({ width: 4, height: 1, depth: 2, colorType: 3 }, [
    new Uint8Array([0b01100001]),
  ], [plte]);
  assertEquals(
    decodeImage(png2, "p2.png").data,
    new Uint8Array([0, 255, 0, 0, 0, 255, 255, 0, 0, 0, 255, 0]),
  );
});

Deno.test("decodeImage() rounds 16-bit PNG samples to 8 bits", () => {
  // RGB 16-bit, one pixel: 0xffff, 0x8000, 0x0080 -> 255, round(32768 * 255 / 65535), 0.
  const png = makePng({ width: 1, height: 1, depth: 16, colorType: 2 }, [
    new Uint8Array([0xff, 0xff, 0x80, 0x00, 0x00, 0x80]),
  ]);
  assertEquals(decodeImage(png, "deep.png").data, new Uint8Array([255, 128, 0]));
  const grey = makePng({ width: 1, height: 1, depth: 16, colorType: 0 }, [
    new Uint8Array([0x10, 0x00]),
  ]);
  assertEquals(decodeImage(grey, "grey16.png").data, new Uint8Array([16, 16, 16]));
});

Deno.test("decodeImage() keeps the colour of colour-keyed (tRNS) PNG pixels", () => {
  const png = makePng({ width: 2, height: 1, depth: 8, colorType: 2 }, [
    new Uint8Array([9, 8, 7, 1, 2, 3]),
  ], [chunk("tRNS", new Uint8Array([0, 9, 0, 8, 0, 7]))]);
  assertEquals(decodeImage(png, "key.png").data, new Uint8Array([9, 8, 7, 1, 2, 3]));
});

Deno.test("decodeImage() decodes an RGB JPEG close to its source", () => {
  const data = new Uint8Array(16 * 16 * 4);
  for (let i = 0; i < 16 * 16; i++) data.set([200, 100, 50, 255], i * 4);
  const bytes = new Uint8Array(jpeg.encode({ width: 16, height: 16, data }, 95).data);
  const img = decodeImage(bytes, "flat.jpg");
  assertEquals([img.width, img.height, img.data.length], [16, 16, 16 * 16 * 3]);
  pixel(img, 5, 7).forEach((v, i) => {
    const want = [200, 100, 50][i]!;
    assert(Math.abs(v - want) <= 3, `channel ${i}: ${v} far from ${want}`);
  });
});

Deno.test("decodeImage() copies greyscale JPEG samples to all three channels", () => {
  const img = decodeImage(greyJpeg(), "grey.jpg");
  assertEquals([img.width, img.height], [16, 8]);
  const [l, r] = [pixel(img, 3, 4), pixel(img, 12, 4)];
  assertEquals(l[0], l[1]);
  assertEquals(l[1], l[2]);
  assertEquals(r[0], r[2]);
  assert(Math.abs(l[0]! - 144) <= 1, `left block ${l[0]}`);
  assert(Math.abs(r[0]! - 128) <= 1, `right block ${r[0]}`);
});

Deno.test("decodeImage() sniffs the format from the bytes, not the name", () => {
  const png = encodePng({ width: 1, height: 1, data: new Uint8Array([1, 2, 3]) });
  assertEquals(decodeImage(png, "mislabelled.jpg").data, new Uint8Array([1, 2, 3]));
  assertEquals(decodeImage(greyJpeg(), "mislabelled.png").width, 16);
});

Deno.test("decodeImage() throws InputError naming the file for unusable bytes", () => {
  const png = encodePng({ width: 8, height: 8, data: new Uint8Array(192).fill(77) });
  const corruptPng = png.slice();
  corruptPng[png.length - 20] = corruptPng[png.length - 20]! ^ 0xff; // inside IDAT: the CRC no longer matches
  const jpg = rgbJpeg(64, 64);
  const corruptJpg = jpg.slice();
  corruptJpg.fill(0xff, 2, 40);
  const cases: [string, Uint8Array, string][] = [
    ["empty.png", new Uint8Array(0), "empty"],
    ["notes.png", new TextEncoder().encode("hello, world"), "unknown image format"],
    [
      "anim.png",
      new TextEncoder().encode("GIF89a\x01\x00\x01\x00"),
      "GIF images are not supported",
    ],
    ["short.png", png.subarray(0, 20), "truncated PNG"],
    ["cut.png", png.subarray(0, png.length - 16), "truncated or corrupt PNG"],
    ["crc.png", corruptPng, "truncated or corrupt PNG"],
    ["cut.jpg", jpg.subarray(0, jpg.length >> 1), "truncated or corrupt JPEG"],
    ["noeoi.jpg", jpg.subarray(0, jpg.length - 2), "truncated or corrupt JPEG"],
    ["header.jpg", jpg.subarray(0, 3), "truncated or corrupt JPEG"],
    ["corrupt.jpg", corruptJpg, "truncated or corrupt JPEG"],
  ];
  for (const [name, bytes, problem] of cases) {
    const e = assertThrows(() => decodeImage(bytes, name), InputError, `Cannot decode ${name}: `);
    assert(e.message.includes(problem), `${name}: ${e.message}`);
  }
});

Deno.test("decodeImage() refuses images larger than maxPixels", () => {
  const png = encodePng({ width: 4, height: 4, data: new Uint8Array(48) });
  assertThrows(
    () => decodeImage(png, "big.png", { maxPixels: 15 }),
    InputError,
    "4x4 is more than the limit of 15 pixels",
  );
  assertThrows(() => decodeImage(rgbJpeg(64, 64), "big.jpg", { maxPixels: 4000 }), InputError);
  assertEquals(decodeImage(png, "ok.png", { maxPixels: 16 }).width, 4);
});

Deno.test("readImage() reads and decodes a file, and names a missing one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/frame.bin`;
    await Deno.writeFile(path, greyJpeg());
    assertEquals((await readImage(path)).height, 8);
    await assertRejects(
      () => readImage(`${dir}/missing.png`),
      InputError,
      `Cannot read ${dir}/missing.png`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imageToTensor() makes a 1 x 3 x H x W planar tensor of byte / 255", () => {
  const img: RgbImage = { width: 2, height: 1, data: new Uint8Array([0, 51, 255, 102, 1, 2]) };
  const t = imageToTensor(img);
  assertEquals(t.shape, [1, 3, 1, 2]);
  const want = [0, 102, 51, 1, 255, 2].map((b) => Math.fround(b / 255));
  assertEquals([...t.data], want);
  assertThrows(
    () => imageToTensor({ width: 2, height: 2, data: new Uint8Array(11) }),
    RangeError,
    "needs 12 bytes, got 11",
  );
});

Deno.test("tensorToImage() rounds, clamps and inverts imageToTensor()", () => {
  const img: RgbImage = {
    width: 3,
    height: 2,
    data: Uint8Array.from({ length: 18 }, (_, i) => i * 14),
  };
  assertEquals(tensorToImage(imageToTensor(img)), img);
  const t = { shape: [3, 1, 1], data: new Float32Array([-0.5, 1.5, 0.5]) };
  assertEquals(tensorToImage(t).data, new Uint8Array([0, 255, 128]));
  assertThrows(() => tensorToImage({ shape: [1, 1, 2], data: new Float32Array(2) }), RangeError);
});

Deno.test("encodePng() rejects data that does not fit the size", () => {
  assertThrows(
    () => encodePng({ width: 2, height: 2, data: new Uint8Array(3) }),
    RangeError,
    "Cannot encode PNG",
  );
});
