import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { AUGMENT_KINDS, augmentImage, greyscale, randomAugmentation } from "./augment.ts";
import { HAS_TRAIN_FIXTURE, imageToHwc, readLossesJson, readTrainNpy } from "./_test_utils.ts";

Deno.test("augmentImage() follows torchvision on a hand-made pixel", () => {
  const px = Float32Array.of(0.5, 0.25, 1, 0.9, 0.1, 0);
  const g = greyscale(px);
  assertEquals(
    g[0],
    Math.fround(Math.fround(0.2989) * 0.5 + Math.fround(0.587) * 0.25 + Math.fround(0.114)),
  );
  const bright = augmentImage(px, { kind: "brightness", factor: 1.2 });
  assertEquals(bright[2], 1); // clamped
  assertEquals(bright[0], Math.fround(Math.fround(1.2) * 0.5));
  const sat0 = augmentImage(px, { kind: "saturation", factor: 0 });
  assertEquals([sat0[0], sat0[1], sat0[2]], [g[0], g[0], g[0]]);
  const con0 = augmentImage(px, { kind: "contrast", factor: 0 });
  const mean = Math.fround((g[0]! + g[1]!) / 2);
  assertEquals(Math.abs(con0[4]! - mean) < 1e-7, true);
  assertThrows(() => augmentImage(px, { kind: "contrast", factor: -1 }), RangeError, "factor");
  assertThrows(() => greyscale(new Float32Array(4)), RangeError, "RGB");
});

Deno.test("randomAugmentation() draws a kind and a factor in [0.8, 1.2]", () => {
  let i = 0;
  const seq = [0.99, 0.5, 0.1, 0];
  const a = randomAugmentation(() => seq[i++]!);
  assertEquals(a.kind, "saturation");
  assertEquals(a.factor, 1);
  const b = randomAugmentation(() => seq[i++]!);
  assertEquals(b.kind, "brightness");
  assertEquals(b.factor, 0.8);
});

Deno.test({
  name: "augmentImage() equals anomalib's augmented images (efficientad-s-train)",
  ignore: !HAS_TRAIN_FIXTURE,
  async fn() {
    const json = await readLossesJson();
    const x = imageToHwc(await readTrainNpy("x.npy"));
    for (const kind of AUGMENT_KINDS) {
      const expected = imageToHwc(await readTrainNpy(`aug_${kind}.npy`));
      const got = augmentImage(x, { kind, factor: json[kind].factor });
      let max = 0;
      for (let j = 0; j < got.length; j++) max = Math.max(max, Math.abs(got[j]! - expected[j]!));
      console.log(`aug ${kind}: max abs diff ${max.toExponential(2)}`);
      assertEquals(max <= 1e-6, true, `${kind}: max abs diff ${max}`);
    }
  },
});
