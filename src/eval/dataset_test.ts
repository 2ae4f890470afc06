import { join } from "node:path";
import { InputError } from "../core/errors.ts";
import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { readCategory, readMask, resizeNearest } from "./dataset.ts";
import { writeFixtureCategory } from "./_test_utils.ts";

Deno.test("readCategory() lists train, good and defect images with their masks", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeFixtureCategory(root, { size: 32, good: 2, defects: { crack: 1, hole: 2 } });
    const c = await readCategory(root);
    assertEquals(c.train.length, 1);
    assertEquals(
      c.test.map((s) => [s.defect, s.label, s.maskPath !== undefined]),
      [
        ["good", 0, false],
        ["good", 0, false],
        ["crack", 1, true],
        ["hole", 1, true],
        ["hole", 1, true],
      ],
    );
    assertEquals(c.test[3]!.maskPath, join(root, "ground_truth", "hole", "000_mask.png"));
    const mask = await readMask(c.test[2]!, [32, 32]);
    // The fixture's first square: x 8..11, y 10..13 (side 32 / 8).
    assertEquals(mask.reduce((a, b) => a + b, 0), 16);
    assertEquals(mask[10 * 32 + 8], 1);
    assertEquals((await readMask(c.test[0]!, [4, 4])).length, 16);
    const half = await readMask(c.test[2]!, [16, 16]);
    assertEquals(half.reduce((a, b) => a + b, 0), 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readCategory() explains a wrong layout", async () => {
  const root = await Deno.makeTempDir();
  try {
    await assertRejects(() => readCategory(join(root, "nope")), InputError, "not a folder");
    await assertRejects(() => readCategory(root), InputError, "no test/ folder");
    await Deno.mkdir(join(root, "test", "crack"), { recursive: true });
    await assertRejects(() => readCategory(root), InputError, "no test/good/");
    await writeFixtureCategory(root, { size: 8 });
    await Deno.remove(join(root, "ground_truth", "scratch", "001_mask.png"));
    await assertRejects(() => readCategory(root), InputError, "001.png has no mask");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resizeNearest() samples floor(dst * in / out) as PyTorch's nearest mode", () => {
  const plane = Uint8Array.from([1, 2, 3, 4]);
  // deno-fmt-ignore
  assertEquals([...resizeNearest(plane, { from: [2, 2], to: [4, 4] })], [
    1, 1, 2, 2,
    1, 1, 2, 2,
    3, 3, 4, 4,
    3, 3, 4, 4,
  ]);
  assertEquals([...resizeNearest(Uint8Array.from([1, 2, 3]), { from: [1, 3], to: [1, 2] })], [
    1,
    2,
  ]);
  assertThrows(
    () => resizeNearest(plane, { from: [3, 3], to: [2, 2] }),
    RangeError,
    "needs 9 values",
  );
});
