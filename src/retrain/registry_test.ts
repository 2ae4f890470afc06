import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { ModelFormatError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { resolveConfig } from "../model/config.ts";
import {
  isGeneratedVersionId,
  ModelRegistry,
  REGISTRY_FILE,
  REGISTRY_STEPS,
  type RegistryStep,
  VERSIONS_DIR,
} from "./registry.ts";

const CONFIG = resolveConfig();

/** Writes trained-looking model directories (synthetic weights, seeds 1..n) once. */
async function fixtureModels(root: string, n: number): Promise<string[]> {
  const dirs: string[] = [];
  for (let seed = 1; seed <= n; seed++) {
    const dir = join(root, `trained-${seed}`);
    const model = syntheticModel(CONFIG, seed);
    await writeProjectModel(dir, {
      ...model,
      thresholds: { threshold: 1, min: 0, max: 2 },
      provenance: { version: `seed-${seed}`, source: "test" },
    });
    dirs.push(dir);
  }
  return dirs;
}

/** A clock that moves one second per call, so ids sort in creation order. */
function steppingClock(): () => Date {
  let t = Date.parse("2026-11-28T12:00:00Z");
  return () => new Date(t += 1000);
}

class Crash extends Error {}

/** A hook that throws once at `at` (the simulated crash) and never again. */
function crashAt(at: RegistryStep): (step: RegistryStep) => void {
  let done = false;
  return (step) => {
    if (step === at && !done) {
      done = true;
      throw new Crash(`crash at ${step}`);
    }
  };
}

const quiet = createLogger({ sink: () => {} });

let shared: { root: string; models: string[] } | undefined;
async function models(): Promise<string[]> {
  if (shared === undefined) {
    const root = await Deno.makeTempDir({ prefix: "registry-models-" });
    shared = { root, models: await fixtureModels(root, 3) };
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(root, { recursive: true });
    });
  }
  return shared.models;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "registry-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ModelRegistry.open() starts empty with no current version", async () => {
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, { logger: quiet });
    assertEquals(registry.currentId, undefined);
    assertEquals(await registry.current(), undefined);
    assertEquals(registry.history(), []);
    assertEquals(await registry.versions(), []);
  });
});

Deno.test("ModelRegistry.addCandidate() copies a model in under a time-hash id", async () => {
  const [a] = await models();
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, { logger: quiet, now: steppingClock() });
    const id = await registry.addCandidate(a!);
    assertOk(isGeneratedVersionId(id), id);
    assertOk(id.startsWith("20261128T120001000Z-"), id);
    assertEquals(await registry.versions(), [id]);
    assertEquals(registry.currentId, undefined, "a candidate does not serve");
  });
});

Deno.test("ModelRegistry.addCandidate() refuses a directory that is not a model", async () => {
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(join(dir, "reg"), { logger: quiet });
    await Deno.mkdir(join(dir, "junk"));
    await Deno.writeTextFile(join(dir, "junk", "model.json"), "{");
    await assertRejects(() => registry.addCandidate(join(dir, "junk")), ModelFormatError);
    assertEquals(await registry.versions(), []);
    const leftovers = [...Deno.readDirSync(join(dir, "reg", VERSIONS_DIR))];
    assertEquals(leftovers, []);
  });
});

Deno.test("ModelRegistry.promote() switches current and records history", async () => {
  const [a, b] = await models();
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, { logger: quiet, now: steppingClock() });
    const first = await registry.addCandidate(a!);
    await registry.promote(first, "bootstrap");
    const second = await registry.addCandidate(b!);
    await registry.promote(second, "validated");
    const current = await registry.current();
    assertEquals(current?.id, second);
    assertEquals(current?.model.provenance.version, "seed-2");
    assertEquals(registry.previousId, first);
    assertEquals(registry.history().map((e) => [e.action, e.id, e.from, e.reason]), [
      ["promote", first, undefined, "bootstrap"],
      ["promote", second, first, "validated"],
    ]);
    const reopened = await ModelRegistry.open(dir, { logger: quiet });
    assertEquals(reopened.currentId, second);
    assertEquals(reopened.history().length, 2);
  });
});

Deno.test("ModelRegistry.promote() rejects an unknown version and changes nothing", async () => {
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, { logger: quiet });
    await assertRejects(() => registry.promote("nope", "x"), RangeError, "no such version");
    assertEquals(registry.history(), []);
  });
});

Deno.test("ModelRegistry.rollback() serves the previous version again", async () => {
  const [a, b, c] = await models();
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, { logger: quiet, now: steppingClock() });
    await assertRejects(() => registry.rollback(), RangeError, "no previous version");
    const ids = [
      await registry.addCandidate(a!),
      await registry.addCandidate(b!),
      await registry.addCandidate(c!),
    ];
    for (const id of ids) await registry.promote(id, "test");
    assertEquals(await registry.rollback("operator command"), ids[1]);
    assertEquals(registry.currentId, ids[1]);
    assertEquals(await registry.rollback(), ids[0]);
    await assertRejects(() => registry.rollback(), RangeError);
    const last = registry.history().at(-1)!;
    assertEquals([last.action, last.id, last.from], ["rollback", ids[0], ids[1]]);
    assertEquals((await registry.current())?.model.provenance.version, "seed-1");
  });
});

Deno.test("ModelRegistry prunes old versions but never the current or the previous", async () => {
  const [a, b, c] = await models();
  await withDir(async (dir) => {
    const registry = await ModelRegistry.open(dir, {
      keep: 0,
      logger: quiet,
      now: steppingClock(),
    });
    const first = await registry.addCandidate(a!);
    assertEquals(await registry.versions(), [first], "the newest candidate is kept");
    await registry.promote(first, "bootstrap");
    const second = await registry.addCandidate(b!);
    await registry.promote(second, "better");
    const third = await registry.addCandidate(c!);
    assertEquals(await registry.versions(), [first, second, third]);
    await registry.promote(third, "best");
    // current third, previous second; first is neither and keep is 0.
    assertEquals(await registry.versions(), [second, third]);
    assertEquals(await registry.rollback(), second);
    // After a rollback the stack is empty: only the current and the newest remain.
    assertEquals(await registry.versions(), [second, third]);
    await assertRejects(() => registry.promote(first, "gone"), RangeError, "no such version");

    const kept = await ModelRegistry.open(join(dir, "k1"), {
      keep: 1,
      logger: quiet,
      now: steppingClock(),
    });
    const x = await kept.addCandidate(a!);
    await kept.promote(x, "1");
    const y = await kept.addCandidate(b!);
    await kept.promote(y, "2");
    const z = await kept.addCandidate(c!);
    await kept.promote(z, "3");
    // current z (also the newest), previous y, one more kept: x.
    assertEquals(await kept.versions(), [x, y, z]);
    const w = await kept.addCandidate(a!);
    // Protected: z (current), y (previous), w (newest); x is the one more kept.
    assertEquals(await kept.versions(), [x, y, z, w]);
    const v = await kept.addCandidate(b!);
    assertEquals(await kept.versions(), [y, z, w, v]);
  });
});

Deno.test("ModelRegistry survives a crash at every step of add and promote", async () => {
  const [a, b] = await models();
  for (const step of REGISTRY_STEPS) {
    await withDir(async (dir) => {
      const clock = steppingClock();
      const setup = await ModelRegistry.open(dir, { keep: 0, logger: quiet, now: clock });
      const first = await setup.addCandidate(a!);
      await setup.promote(first, "bootstrap");
      const second = await setup.addCandidate(b!);
      await setup.promote(second, "second");
      // A third promotion prunes `first` (keep 0): every step is reached.
      const crashing = await ModelRegistry.open(dir, {
        keep: 0,
        logger: quiet,
        now: clock,
        onStep: crashAt(step),
      });
      let crashed = false;
      try {
        const third = await crashing.addCandidate(a!);
        await crashing.promote(third, "third");
      } catch (e) {
        if (!(e instanceof Crash)) throw e;
        crashed = true;
      }
      assertOk(crashed, `no crash at ${step}`);
      const reopened = await ModelRegistry.open(dir, { keep: 0, logger: quiet });
      const current = await reopened.current();
      assertOk(current !== undefined, `no current model after a crash at ${step}`);
      const committed = step === "pointer:renamed" || step === "prune:trashed";
      assertEquals(current.id !== second, committed, `current ${current.id} after ${step}`);
      const names = [...Deno.readDirSync(join(dir, VERSIONS_DIR))].map((e) => e.name);
      assertEquals(names.filter((n) => n.startsWith(".")), [], `leftovers after ${step}`);
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assertEquals(files, [REGISTRY_FILE, VERSIONS_DIR], `files after ${step}`);
      if (reopened.currentId !== second) {
        assertEquals(reopened.previousId, second, `previous after ${step}`);
      }
    });
  }
});

Deno.test("ModelRegistry survives a crash during rollback", async () => {
  const [a, b] = await models();
  for (const step of ["pointer:temp-written", "pointer:renamed"] as const) {
    await withDir(async (dir) => {
      const clock = steppingClock();
      const setup = await ModelRegistry.open(dir, { logger: quiet, now: clock });
      const first = await setup.addCandidate(a!);
      await setup.promote(first, "bootstrap");
      const second = await setup.addCandidate(b!);
      await setup.promote(second, "second");
      const crashing = await ModelRegistry.open(dir, {
        logger: quiet,
        now: clock,
        onStep: crashAt(step),
      });
      await assertRejects(() => crashing.rollback(), Crash);
      const reopened = await ModelRegistry.open(dir, { logger: quiet });
      const expected = step === "pointer:temp-written" ? second : first;
      assertEquals((await reopened.current())?.id, expected, step);
    });
  }
});

Deno.test("ModelRegistry.open() cleans a half-copied candidate and a temp pointer", async () => {
  const [a] = await models();
  await withDir(async (dir) => {
    const setup = await ModelRegistry.open(dir, { logger: quiet });
    const id = await setup.addCandidate(a!);
    await setup.promote(id, "bootstrap");
    const half = join(dir, VERSIONS_DIR, ".tmp-1234");
    await Deno.mkdir(half);
    await Deno.writeTextFile(join(half, "model.json"), '{"format":');
    await Deno.writeTextFile(join(dir, `${REGISTRY_FILE}.tmp-5678`), '{"current": "x"');
    const lines: string[] = [];
    const reopened = await ModelRegistry.open(dir, {
      logger: createLogger({ sink: (l) => lines.push(l) }),
    });
    assertEquals((await reopened.current())?.id, id);
    assertEquals(await reopened.versions(), [id]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      REGISTRY_FILE,
      VERSIONS_DIR,
    ]);
    assertEquals(lines.filter((l) => l.includes("leftover")).length, 2);
  });
});

Deno.test("ModelRegistry.open() falls back when the current version was damaged", async () => {
  const [a, b] = await models();
  await withDir(async (dir) => {
    const setup = await ModelRegistry.open(dir, { logger: quiet, now: steppingClock() });
    const first = await setup.addCandidate(a!);
    await setup.promote(first, "bootstrap");
    const second = await setup.addCandidate(b!);
    await setup.promote(second, "second");
    await Deno.writeTextFile(join(setup.pathOf(second), "weights.safetensors"), "garbage");
    const reopened = await ModelRegistry.open(dir, { logger: quiet });
    assertEquals((await reopened.current())?.id, first);
    const last = reopened.history().at(-1)!;
    assertEquals([last.action, last.id, last.from], ["rollback", first, second]);
  });
});

Deno.test("ModelRegistry.open() rejects a bad keep and a foreign registry.json", async () => {
  await withDir(async (dir) => {
    await assertRejects(() => ModelRegistry.open(dir, { keep: -1 }), RangeError, "keep");
    await Deno.writeTextFile(join(dir, REGISTRY_FILE), '{"hello": 1}');
    await assertRejects(() => ModelRegistry.open(dir), Error, "unexpected contents");
  });
});
