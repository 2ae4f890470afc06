import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { resolveConfig } from "../model/config.ts";
import { readProjectModel, writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { quantizeModelDir } from "./quantize_dir.ts";

function frame(seed: number) {
  const data = new Float32Array(3 * 256 * 256);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761 + seed * 97) % 1000) / 1000;
  return { shape: [1, 3, 256, 256], data };
}

Deno.test("quantizeModelDir() adds the int8 graph to the directory's model.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeProjectModel(dir, syntheticModel(resolveConfig({ teacherOutChannels: 8 })));
    const int8 = await quantizeModelDir(dir, [frame(0), frame(1)], { intraOpThreads: 1 });
    assertEquals((await readProjectModel(dir)).int8, int8);
    assertEquals(int8.calibration.frames, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("quantizeModelDir() aborted writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeProjectModel(dir, syntheticModel(resolveConfig({ teacherOutChannels: 8 })));
    const controller = new AbortController();
    controller.abort();
    await assertRejects(
      () => quantizeModelDir(dir, [frame(0)], { signal: controller.signal }),
      DOMException,
    );
    assertEquals((await readProjectModel(dir)).int8, undefined);
    assertEquals([...Deno.readDirSync(dir)].length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
