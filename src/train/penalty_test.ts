import { fileURLToPath } from "node:url";
import {
  assertAlmostEquals,
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import type { Tensor } from "../core/tensor.ts";
import { resizeBilinear } from "../image/resize.ts";
import { writePngs } from "./_test_utils.ts";
import {
  centreCrop,
  GREYSCALE_PROBABILITY,
  PenaltyImages,
  penaltyTransform,
  toGreyscale,
} from "./penalty.ts";

const IMAGENETTE = fileURLToPath(
  new URL("../../../shared/datasets/imagenette_sample", import.meta.url),
);

function ramp(h: number, w: number): Tensor {
  const data = new Float32Array(3 * h * w);
  for (let i = 0; i < data.length; i++) data[i] = (i % 251) / 250;
  return { shape: [1, 3, h, w], data };
}

Deno.test("toGreyscale() weighs R, G, B by 0.299, 0.587, 0.114 into three equal channels", () => {
  const t: Tensor = { shape: [1, 3, 1, 2], data: Float32Array.of(1, 0, 0, 1, 0, 0.5) };
  const g = toGreyscale(t);
  assertEquals(g.shape, [1, 3, 1, 2]);
  assertAlmostEquals(g.data[0]!, 0.299, 1e-7);
  assertAlmostEquals(g.data[1]!, 0.587 + 0.057, 1e-7);
  assertEquals([g.data[2], g.data[3]], [g.data[0], g.data[1]]);
  assertEquals([g.data[4], g.data[5]], [g.data[0], g.data[1]]);
  assertThrows(
    () => toGreyscale({ shape: [3, 1, 1], data: new Float32Array(3) }),
    RangeError,
    "expected [1, 3, H, W]",
  );
});

Deno.test("centreCrop() takes the middle as torchvision's CenterCrop", () => {
  const t = ramp(4, 6);
  const c = centreCrop(t, [2, 2]);
  assertEquals(c.shape, [1, 3, 2, 2]);
  // top = 1, left = 2
  assertEquals([...c.data.subarray(0, 4)], [t.data[8], t.data[9], t.data[14], t.data[15]]);
  assertEquals(c.data[4], t.data[24 + 8]);
  assertThrows(() => centreCrop(t, [5, 2]), RangeError, "Cannot crop 5x2");
});

Deno.test("penaltyTransform() resizes to twice the size, greys with p = 0.3, crops", () => {
  const img = ramp(37, 53);
  const colour = penaltyTransform(img, [8, 10], () => 0.5);
  const expected = centreCrop(resizeBilinear(img, [16, 20]), [8, 10]);
  assertEquals(colour, expected);
  const grey = penaltyTransform(img, [8, 10], () => GREYSCALE_PROBABILITY - 1e-9);
  assertEquals(grey, centreCrop(toGreyscale(resizeBilinear(img, [16, 20])), [8, 10]));
});

Deno.test("PenaltyImages.open() streams the same seeded images and resumes from its state", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(dir, 3, { width: 9, height: 7 });
    const a = await PenaltyImages.open(dir, [4, 4], { seed: 5 });
    const b = await PenaltyImages.open(dir, [4, 4], { seed: 5 });
    assertEquals(a.count, 3);
    const seqA: Tensor[] = [];
    for (let i = 0; i < 4; i++) seqA.push(await a.next());
    for (let i = 0; i < 2; i++) assertEquals(await b.next(), seqA[i]);
    const resumed = await PenaltyImages.open(dir, [4, 4], { seed: 5, state: b.state });
    assertEquals(await resumed.next(), seqA[2]);
    assertEquals(await resumed.next(), seqA[3]);
    assertEquals(seqA[0]!.shape, [1, 3, 4, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PenaltyImages.open() rejects a folder without images", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(() => PenaltyImages.open(dir, [4, 4]), InputError, "no PNG or JPEG");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "PenaltyImages() reads Imagenette's JPEGs, greyscale ones included",
  ignore: (() => {
    try {
      return !Deno.statSync(IMAGENETTE).isDirectory;
    } catch {
      console.log(`skipped: ${IMAGENETTE} is absent`);
      return true;
    }
  })(),
  fn: async () => {
    const p = await PenaltyImages.open(IMAGENETTE, [256, 256], { seed: 0 });
    assertOk(p.count > 0);
    let greys = 0;
    for (let i = 0; i < 6; i++) {
      const t = await p.next();
      assertEquals(t.shape, [1, 3, 256, 256]);
      const plane = 256 * 256;
      if (t.data.subarray(0, plane).every((v, k) => v === t.data[plane + k])) greys++;
    }
    assertOk(greys < 6);
  },
});
