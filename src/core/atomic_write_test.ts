import { join } from "node:path";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { writeFileAtomic } from "./atomic_write.ts";

Deno.test("writeFileAtomic() replaces a file and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "a.json");
    await writeFileAtomic(path, new TextEncoder().encode("one"));
    await writeFileAtomic(path, new TextEncoder().encode("two"));
    assertEquals(await Deno.readTextFile(path), "two");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["a.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() fails cleanly when the folder is missing", async () => {
  await assertRejects(
    () => writeFileAtomic("/nonexistent-dir/x/a.json", new Uint8Array(1)),
    Deno.errors.NotFound,
  );
});

Deno.test("writeFileAtomic() calls beforeRename with the flushed temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "a.bin");
    await writeFileAtomic(path, new TextEncoder().encode("old"));
    let seen = "";
    await assertRejects(
      () =>
        writeFileAtomic(path, new TextEncoder().encode("new"), {
          beforeRename: async (temp) => {
            seen = await Deno.readTextFile(temp);
            throw new Error("killed");
          },
        }),
      Error,
      "killed",
    );
    assertEquals(seen, "new");
    assertEquals(await Deno.readTextFile(path), "old");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["a.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
