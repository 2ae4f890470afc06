import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import type { Frame } from "../core/frame.ts";
import { InputError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { FrameStore, type FrameStoreOptions } from "./frame_store.ts";

/** An 8 x 8 frame: a byte ramp starting at `fill`. */
function frame(seq: number, fill = seq * 10): Frame {
  const rgb = new Uint8Array(8 * 8 * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (fill + i) & 0xff;
  return { camera: "cam", seq, capturedAt: 1000 + seq, width: 8, height: 8, rgb };
}

async function tempStore(
  options: FrameStoreOptions = {},
): Promise<{ dir: string; store: FrameStore } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "frame_store_" });
  const store = await FrameStore.open(dir, options);
  return {
    dir,
    store,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function namesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("FrameStore.add() stores a frame that read() returns as RGB", async () => {
  await using t = await tempStore({ now: () => 42 });
  const r = await t.store.add(frame(3), { score: 0.25 });
  assertOk(r.ok);
  assertEquals(r.frame.label, "normal");
  assertEquals(r.frame.source, "auto");
  assertEquals(r.frame.score, 0.25);
  assertEquals(r.frame.storedAt, 42);
  const back = await t.store.read(r.frame.id);
  assertEquals(back, frame(3));
  assertEquals(t.store.stats().frames, 1);
  assertEquals(t.store.stats().bytes, r.frame.bytes);
  await assertRejects(() => t.store.read("999"), InputError, "no such frame");
});

Deno.test("FrameStore.copyPng() copies a frame's PNG as stored", async () => {
  await using t = await tempStore();
  const r = await t.store.add(frame(4));
  assertOk(r.ok);
  const out = join(t.dir, "copy.png");
  await t.store.copyPng(r.frame.id, out);
  const bytes = await Deno.readFile(out);
  assertEquals(bytes.length, r.frame.bytes);
  assertEquals([...bytes.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(""), "PNG");
  await assertRejects(() => t.store.copyPng("999", out), InputError, "no such frame");
});

Deno.test("FrameStore.add() evicts the oldest auto frames past maxFrames and keeps operator frames", async () => {
  await using t = await tempStore({ maxFrames: 3, maxOperatorFrames: 2 });
  const op = await t.store.add(frame(0), { source: "operator", label: "anomalous" });
  assertOk(op.ok);
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const r = await t.store.add(frame(i));
    assertOk(r.ok);
    ids.push(r.frame.id);
  }
  assertEquals(t.store.list({ source: "auto" }).map((f) => f.seq), [3, 4, 5]);
  assertEquals(t.store.list({ source: "operator" }).map((f) => f.seq), [0]);
  assertEquals(t.store.stats().evicted, 2);
  // The evicted frames' files are gone.
  const files = await namesIn(join(t.dir, "frames"));
  assertEquals(files.length, 8);
  assertOk(!files.includes(`${ids[0]}.png`));
  // Operator frames have their own cap.
  await t.store.add(frame(6), { source: "operator", label: "normal" });
  const r = await t.store.add(frame(7), { source: "operator", label: "normal" });
  assertOk(r.ok);
  assertEquals(r.evicted, [op.frame.id]);
  assertEquals(t.store.list({ label: "anomalous" }), []);
  assertEquals(t.store.list({ since: 1005 }).map((f) => f.seq), [5, 6, 7]);
});

Deno.test("FrameStore.add() evicts auto frames before operator frames past maxBytes", async () => {
  let size: number;
  {
    await using t = await tempStore();
    const r = await t.store.add(frame(0));
    assertOk(r.ok);
    size = r.frame.bytes;
  }
  await using u = await tempStore({ maxBytes: Math.floor(size * 3.5) });
  await u.store.add(frame(0), { source: "operator" });
  await u.store.add(frame(1));
  await u.store.add(frame(2));
  await u.store.add(frame(3));
  assertEquals(u.store.list().map((f) => f.seq), [0, 2, 3]);
  assertOk(u.store.stats().bytes <= size * 3.5);
});

Deno.test("FrameStore.mark() relabels a frame as operator-marked, across a reopen", async () => {
  await using t = await tempStore();
  const r = await t.store.add(frame(1), { score: 1 });
  assertOk(r.ok);
  const m = await t.store.mark(r.frame.id, "anomalous");
  assertOk(m.ok);
  assertEquals([m.frame.label, m.frame.source], ["anomalous", "operator"]);
  const bad = await t.store.mark("nope", "normal");
  assertOk(!bad.ok);
  assertEquals(t.store.stats().writeErrors, 0);
  await t.store.close();
  await using again = await FrameStore.open(t.dir);
  assertEquals(again.list({ label: "anomalous", source: "operator" }).map((f) => f.id), [
    r.frame.id,
  ]);
});

Deno.test("FrameStore.open() after a restart sees the same frames and continues the ids", async () => {
  await using t = await tempStore();
  for (let i = 0; i < 3; i++) await t.store.add(frame(i), { score: i });
  const before = t.store.list();
  await t.store.close();
  await using again = await FrameStore.open(t.dir);
  assertEquals(again.list(), before);
  assertEquals(again.stats().recovery, {
    tempRemoved: 0,
    orphansRemoved: 0,
    missingDropped: 0,
    indexRebuilt: false,
  });
  const r = await again.add(frame(9));
  assertOk(r.ok);
  assertOk(r.frame.id > before[2]!.id);
  assertEquals(await again.read(before[1]!.id), frame(1));
});

Deno.test("FrameStore.open() recovers from a crash: torn index, temp files, orphans, lost files", async () => {
  await using t = await tempStore();
  for (let i = 0; i < 4; i++) await t.store.add(frame(i));
  const [a, b, c, d] = t.store.list();
  await t.store.close();
  const frames = join(t.dir, "frames");
  // A torn index, a leftover index temp file, a half-written PNG temp file.
  const index = await Deno.readFile(join(t.dir, "index.json"));
  await Deno.writeFile(join(t.dir, "index.json"), index.subarray(0, index.length / 2));
  await Deno.writeFile(join(t.dir, "index.json.tmp"), new TextEncoder().encode('{"versi'));
  await Deno.writeFile(join(frames, "000000000099.png.tmp"), new Uint8Array(10));
  // An orphan PNG (crashed before its record), a record whose PNG is gone, a garbage record.
  await Deno.writeFile(join(frames, "000000000050.png"), new Uint8Array(10));
  await Deno.remove(join(frames, `${b!.id}.png`));
  await Deno.writeTextFile(join(frames, `${c!.id}.json`), "{garbage");
  const lines: string[] = [];
  const logger = createLogger({ sink: (line) => lines.push(line) });
  await using again = await FrameStore.open(t.dir, { logger });
  assertEquals(again.list().map((f) => f.id), [a!.id, d!.id]);
  assertEquals(again.stats().recovery, {
    tempRemoved: 2,
    orphansRemoved: 2, // 50.png and c's PNG (its record was garbage)
    missingDropped: 2,
    indexRebuilt: true,
  });
  assertEquals(lines.length, 1);
  assertOk(lines[0]!.startsWith("warn  frame store recovered"));
  assertEquals(await namesIn(frames), [
    `${a!.id}.json`,
    `${a!.id}.png`,
    `${d!.id}.json`,
    `${d!.id}.png`,
  ]);
  assertEquals(await namesIn(t.dir), ["frames", "index.json"]);
  const saved = JSON.parse(await Deno.readTextFile(join(t.dir, "index.json")));
  assertEquals(saved.frames.length, 2);
  // New ids never reuse one seen on disk.
  const r = await again.add(frame(7));
  assertOk(r.ok);
  assertOk(r.frame.id > "000000000050");
  assertEquals(await again.read(d!.id), frame(3));
});

Deno.test("FrameStore.add() reports a write failure and keeps working", async () => {
  let failing = true;
  const errors: Error[] = [];
  await using t = await tempStore({
    onError: (e) => errors.push(e),
    writeFile: (path, data) => {
      if (failing) {
        return Promise.reject(new Deno.errors.NotCapable(`No space left on device: ${path}`));
      }
      return Deno.writeFile(path, data);
    },
  });
  const r = await t.store.add(frame(1));
  assertOk(!r.ok);
  assertOk(r.error.message.includes("No space left on device"));
  // Opening failed to write the index too: reported, not thrown.
  assertEquals(t.store.stats().writeErrors, 2);
  assertOk(t.store.stats().lastError?.includes("No space left"));
  assertEquals(errors.length, 2);
  assertEquals(t.store.stats().frames, 0);
  assertEquals(await namesIn(join(t.dir, "frames")), []);
  failing = false;
  const ok = await t.store.add(frame(2));
  assertOk(ok.ok);
  assertEquals(t.store.list().map((f) => f.seq), [2]);
  assertEquals(await t.store.read(ok.frame.id), frame(2));
});

Deno.test("FrameStore.add() reports a real file-system error without throwing", async () => {
  await using t = await tempStore();
  const frames = join(t.dir, "frames");
  // The frames folder replaced by a file: every write fails (even for root, unlike chmod).
  await Deno.remove(frames, { recursive: true });
  await Deno.writeTextFile(frames, "not a folder");
  const r = await t.store.add(frame(1));
  assertOk(!r.ok);
  assertEquals(t.store.stats().writeErrors, 1);
  assertEquals(t.store.stats().frames, 0);
  await Deno.remove(frames);
  await Deno.mkdir(frames);
  const ok = await t.store.add(frame(2));
  assertOk(ok.ok);
  assertEquals(t.store.stats().frames, 1);
});

Deno.test("FrameStore.close() lets writes in flight finish and refuses later ones", async () => {
  await using t = await tempStore();
  const pending = t.store.add(frame(1));
  await t.store.close();
  assertOk((await pending).ok);
  const late = await t.store.add(frame(2));
  assertOk(!late.ok);
  assertOk(late.error.message.includes("closed"));
  assertEquals(t.store.stats().writeErrors, 0);
});

Deno.test("FrameStore.add() serialises concurrent adds and refuses a malformed frame", async () => {
  await using t = await tempStore();
  const results = await Promise.all([0, 1, 2, 3, 4].map((i) => t.store.add(frame(i))));
  const ids = results.map((r) => (r.ok ? r.frame.id : ""));
  assertEquals(new Set(ids).size, 5);
  assertEquals(t.store.list().map((f) => f.seq), [0, 1, 2, 3, 4]);
  const bad = await t.store.add({ ...frame(5), rgb: new Uint8Array(3) });
  assertOk(!bad.ok);
  assertOk(bad.error instanceof RangeError);
  assertEquals(t.store.stats().writeErrors, 0);
});
