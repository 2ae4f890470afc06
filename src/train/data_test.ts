import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { imageToTensor } from "../image/decode.ts";
import { writePngs } from "./_test_utils.ts";
import { resizeBilinear } from "../image/resize.ts";
import {
  deriveSeed,
  EpochSampler,
  findTrainingData,
  ImageSet,
  listImages,
  loadImageTensor,
  permutation,
  SeededRandom,
} from "./data.ts";

Deno.test("SeededRandom() repeats a seed's sequence and continues from a saved state", () => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const first = [a.next(), a.next(), a.next()];
  assertEquals(first, [b.next(), b.next(), b.next()]);
  const saved = a.state;
  const next = [a.next(), a.next()];
  const c = SeededRandom.fromState(saved);
  assertEquals([c.next(), c.next()], next);
  assertOk(first.every((v) => v >= 0 && v < 1));
  assertOk(new SeededRandom(43).next() !== first[0]);
});

Deno.test("permutation() is a seeded shuffle of every index", () => {
  const p = permutation(50, new SeededRandom(1));
  assertEquals([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assertEquals(p, permutation(50, new SeededRandom(1)));
  assertOk(p.join() !== permutation(50, new SeededRandom(2)).join());
  assertOk(deriveSeed(0, 1) !== deriveSeed(0, 2));
});

Deno.test("EpochSampler() visits every item each epoch and resumes the same order", () => {
  const s = new EpochSampler(5, 7);
  const epoch0 = Array.from({ length: 5 }, () => s.next());
  const epoch1 = Array.from({ length: 5 }, () => s.next());
  assertEquals([...epoch0].sort(), [0, 1, 2, 3, 4]);
  assertEquals([...epoch1].sort(), [0, 1, 2, 3, 4]);
  assertOk(epoch0.join() !== epoch1.join());
  const whole = new EpochSampler(5, 7);
  const seq = Array.from({ length: 13 }, () => whole.next());
  const part = new EpochSampler(5, 7);
  for (let i = 0; i < 6; i++) part.next();
  const resumed = new EpochSampler(5, 7, part.state);
  assertEquals(Array.from({ length: 7 }, () => resumed.next()), seq.slice(6));
  assertThrows(() => new EpochSampler(0, 1), RangeError, "item count must be a positive integer");
});

Deno.test("findTrainingData() splits a plain folder by seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(dir, 10, { width: 4, height: 3 });
    const d = await findTrainingData(dir, { holdout: 0.2, seed: 3 });
    assertEquals(d.layout, "folder");
    assertEquals(d.train.length, 8);
    assertEquals(d.calibration.length, 2);
    assertEquals(new Set([...d.train, ...d.calibration]).size, 10);
    assertEquals(await findTrainingData(dir, { holdout: 0.2, seed: 3 }), d);
    const other = await findTrainingData(dir, { holdout: 0.2, seed: 4 });
    assertOk(other.calibration.join() !== d.calibration.join());
    const one = await findTrainingData(dir, { holdout: 0.01 });
    assertEquals(one.calibration.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findTrainingData() reads an MVTec category, calibrating on test/good on request", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "train", "good"), 4, { width: 4, height: 4 });
    await writePngs(join(dir, "test", "good"), 2, { width: 4, height: 4 });
    const split = await findTrainingData(dir);
    assertEquals(split.layout, "mvtec");
    assertEquals([split.train.length, split.calibration.length], [3, 1]);
    const tg = await findTrainingData(dir, { calibration: "test-good" });
    assertEquals(tg.train.length, 4);
    assertEquals(tg.calibration.map((p) => p.includes(join("test", "good"))), [true, true]);
    assertEquals(tg.calibrationSource, "test-good");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findTrainingData() explains unusable folders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(() => findTrainingData(join(dir, "nope")), InputError, "not a folder");
    await assertRejects(() => findTrainingData(dir), InputError, "no PNG or JPEG images");
    await writePngs(dir, 1, { width: 2, height: 2 });
    await assertRejects(() => findTrainingData(dir), InputError, "at least 2");
    await assertRejects(
      () => findTrainingData(dir, { calibration: "test-good" }),
      InputError,
      "not an MVTec-style category",
    );
    await assertRejects(() => findTrainingData(dir, { holdout: 1 }), InputError, "[0, 1)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadImageTensor() decodes and resizes bilinearly to the training size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const [path] = await writePngs(dir, 1, { width: 6, height: 5 });
    const t = await loadImageTensor(path!, [8, 10]);
    assertEquals(t.shape, [1, 3, 8, 10]);
    const bytes = await Deno.readFile(path!);
    const { decodeImage } = await import("../image/decode.ts");
    const expected = resizeBilinear(imageToTensor(decodeImage(bytes, path!)), [8, 10]);
    assertEquals(t.data, expected.data);
    assertOk(t.data.every((v) => v >= 0 && v <= 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ImageSet() serves tensors by index and caches them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writePngs(dir, 2, { width: 4, height: 4 });
    const set = new ImageSet(paths, [4, 4]);
    const a = await set.get(1);
    assertOk(a === await set.get(1));
    const uncached = new ImageSet(paths, [4, 4], { cacheBytes: 0 });
    const b = await uncached.get(1);
    assertOk(b !== await uncached.get(1));
    assertEquals(b.data, a.data);
    await assertRejects(() => set.get(2), RangeError, "the set has 2");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listImages() lists PNG and JPEG files by name, any case of extension", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const n of ["b.JPEG", "a.png", "c.txt", "d.jpg"]) {
      await Deno.writeFile(join(dir, n), new Uint8Array(1));
    }
    await Deno.mkdir(join(dir, "e.png"));
    assertEquals(await listImages(dir), ["a.png", "b.JPEG", "d.jpg"].map((n) => join(dir, n)));
    await assertRejects(() => listImages(join(dir, "none")), InputError, "Cannot list images");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
