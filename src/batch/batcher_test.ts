import type { Frame } from "../core/frame.ts";
import { createLogger } from "../core/log.ts";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { Batcher, type BatcherClock } from "./batcher.ts";

/** A manual clock: time moves only on `tick()`, which fires due timers in order. */
class FakeClock implements BatcherClock {
  #now = 0;
  #id = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  tick(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) =>
        t.at <= end
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = end;
  }
}

function frame(camera: string, seq: number): Frame {
  return { camera, seq, capturedAt: seq, width: 1, height: 1, rgb: new Uint8Array(3) };
}

function ids(batch: readonly Frame[]): string[] {
  return batch.map((f) => `${f.camera}${f.seq}`);
}

/** Lets queued promise callbacks run (one macrotask). */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Starts a read and reports whether it has resolved yet. */
function track<T>(reader: ReadableStreamDefaultReader<T>) {
  const state: { done: boolean; value?: ReadableStreamReadResult<T> } = { done: false };
  const promise = reader.read().then((r) => {
    state.done = true;
    state.value = r;
    return r;
  });
  return { state, promise };
}

Deno.test("Batcher() cuts a full batch as soon as maxBatch frames wait", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 3, maxWaitMs: 1000, queuePerCamera: 8, clock });
  const reader = batcher.readable.getReader();
  const read = track(reader);
  for (let i = 0; i < 3; i++) batcher.push(frame("a", i));
  const r = await read.promise;
  assertEquals(ids(r.value!), ["a0", "a1", "a2"]);
  assertEquals(clock.pending, 0);
  reader.releaseLock();
});

Deno.test("Batcher() flushes a partial batch after maxWaitMs", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 4, maxWaitMs: 10, queuePerCamera: 8, clock });
  const reader = batcher.readable.getReader();
  const read = track(reader);
  batcher.push(frame("a", 0));
  clock.tick(5);
  batcher.push(frame("b", 0));
  clock.tick(4);
  await settle();
  assertEquals(read.state.done, false);
  clock.tick(1);
  const r = await read.promise;
  assertEquals(ids(r.value!), ["a0", "b0"]);
  reader.releaseLock();
});

Deno.test("Batcher() counts maxWaitMs from the oldest waiting frame, not from the read", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 4, maxWaitMs: 10, queuePerCamera: 8, clock });
  batcher.push(frame("a", 0));
  clock.tick(25); // inference was busy: nobody asked
  assertEquals(batcher.stats().batches, 0);
  const reader = batcher.readable.getReader();
  const r = await reader.read();
  assertEquals(ids(r.value!), ["a0"]);
  assertEquals(clock.pending, 0);
  reader.releaseLock();
});

Deno.test("Batcher() cuts a batch only when read, so the next one fills meanwhile", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 10, queuePerCamera: 8, clock });
  for (let i = 0; i < 5; i++) batcher.push(frame("a", i));
  await settle();
  assertEquals([batcher.stats().batches, batcher.stats().waiting], [0, 5]);
  const reader = batcher.readable.getReader();
  assertEquals(ids((await reader.read()).value!), ["a0", "a1"]);
  assertEquals([batcher.stats().batches, batcher.stats().waiting], [1, 3]);
  assertEquals(ids((await reader.read()).value!), ["a2", "a3"]);
  reader.releaseLock();
});

Deno.test("Batcher() drops the oldest waiting frame of a full camera and counts it", async () => {
  const clock = new FakeClock();
  const lines: string[] = [];
  await using batcher = new Batcher({
    maxBatch: 8,
    maxWaitMs: 10,
    queuePerCamera: 2,
    clock,
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  for (let i = 0; i < 5; i++) batcher.push(frame("a", i));
  batcher.push(frame("b", 0));
  clock.tick(10);
  const reader = batcher.readable.getReader();
  assertEquals(ids((await reader.read()).value!), ["a3", "b0", "a4"]);
  const s = batcher.stats();
  assertEquals(s.cameras["a"], { accepted: 5, dropped: 3, emitted: 2, waiting: 0 });
  assertEquals(s.cameras["b"], { accepted: 1, dropped: 0, emitted: 1, waiting: 0 });
  assertEquals(lines.filter((l) => l.includes("dropping oldest frames")).length, 1);
  reader.releaseLock();
});

Deno.test("Batcher() takes frames round-robin so a fast camera cannot starve a slow one", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 3, maxWaitMs: 10, queuePerCamera: 16, clock });
  for (let i = 0; i < 10; i++) batcher.push(frame("fast", i));
  batcher.push(frame("slow", 0));
  const reader = batcher.readable.getReader();
  assertEquals(ids((await reader.read()).value!), ["fast0", "slow0", "fast1"]);
  assertEquals(ids((await reader.read()).value!), ["fast2", "fast3", "fast4"]);
  reader.releaseLock();
});

Deno.test("Batcher() continues the round-robin where the previous batch stopped", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({
    maxBatch: 2,
    maxWaitMs: 10,
    queuePerCamera: 8,
    cameras: ["a", "b", "c"],
    clock,
  });
  for (let i = 0; i < 2; i++) for (const c of ["c", "b", "a"]) batcher.push(frame(c, i));
  const reader = batcher.readable.getReader();
  const batches: string[][] = [];
  for (let i = 0; i < 3; i++) batches.push(ids((await reader.read()).value!));
  assertEquals(batches, [["a0", "b0"], ["c0", "a1"], ["b1", "c1"]]);
  reader.releaseLock();
});

Deno.test("Batcher() writable() never blocks the producer", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 10, queuePerCamera: 3, clock });
  const frames = ReadableStream.from(Array.from({ length: 20 }, (_, i) => frame("a", i)));
  await frames.pipeTo(batcher.writable()); // completes although nobody reads batches
  assertEquals(batcher.stats().cameras["a"], { accepted: 20, dropped: 17, emitted: 0, waiting: 3 });
  const reader = batcher.readable.getReader();
  assertEquals(ids((await reader.read()).value!), ["a17", "a18"]);
  reader.releaseLock();
});

Deno.test("Batcher() close() flushes waiting frames at once, then ends", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 1e9, queuePerCamera: 8, clock });
  for (let i = 0; i < 3; i++) batcher.push(frame("a", i));
  batcher.close();
  assertEquals(batcher.push(frame("a", 3)), false);
  const batches: string[][] = [];
  for await (const batch of batcher.readable) batches.push(ids(batch));
  assertEquals(batches, [["a0", "a1"], ["a2"]]);
  const s = batcher.stats();
  assertEquals([s.batches, s.frames, s.meanBatchSize, s.discarded], [2, 3, 1.5, 1]);
});

Deno.test("Batcher() close() ends a pending read when nothing waits", async () => {
  await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 10, queuePerCamera: 8 });
  const reader = batcher.readable.getReader();
  const read = reader.read();
  batcher.close();
  assertEquals((await read).done, true);
});

Deno.test("Batcher() dispose clears its timer and ends the readable", async () => {
  const batcher = new Batcher({ maxBatch: 4, maxWaitMs: 60_000, queuePerCamera: 8 });
  const reader = batcher.readable.getReader();
  const read = reader.read();
  batcher.push(frame("a", 0)); // arms a real one-minute timer
  await batcher[Symbol.asyncDispose]();
  assertEquals((await read).done, true);
  assertEquals(batcher.stats().discarded, 1);
});

Deno.test("Batcher() flushes after maxWaitMs on the real clock", async () => {
  await using batcher = new Batcher({ maxBatch: 4, maxWaitMs: 1, queuePerCamera: 8 });
  const reader = batcher.readable.getReader();
  const read = reader.read();
  batcher.push(frame("a", 0));
  assertEquals(ids((await read).value!), ["a0"]);
  reader.releaseLock();
});

Deno.test("Batcher() stops when the consumer cancels its readable", async () => {
  const clock = new FakeClock();
  await using batcher = new Batcher({ maxBatch: 4, maxWaitMs: 10, queuePerCamera: 8, clock });
  batcher.push(frame("a", 0));
  await batcher.readable.cancel();
  assertEquals(batcher.push(frame("a", 1)), false);
  assertEquals([batcher.stats().discarded, clock.pending], [2, 0]);
});

Deno.test("Batcher() stats() lists known cameras before their first frame", async () => {
  await using batcher = new Batcher({
    maxBatch: 4,
    maxWaitMs: 10,
    queuePerCamera: 8,
    cameras: ["line-1", "line-2"],
  });
  const s = batcher.stats();
  assertEquals(Object.keys(s.cameras), ["line-1", "line-2"]);
  assertEquals(s.cameras["line-2"], { accepted: 0, dropped: 0, emitted: 0, waiting: 0 });
  assertEquals(s.meanBatchSize, 0);
});

Deno.test("Batcher() rejects invalid options", () => {
  assertThrows(
    () => new Batcher({ maxBatch: 0, maxWaitMs: 10, queuePerCamera: 1 }),
    RangeError,
    "Cannot make batcher: maxBatch must be an integer >= 1, got 0",
  );
  assertThrows(
    () => new Batcher({ maxBatch: 1, maxWaitMs: -1, queuePerCamera: 1 }),
    RangeError,
    "maxWaitMs",
  );
  const e = assertThrows(
    () => new Batcher({ maxBatch: 1, maxWaitMs: 0, queuePerCamera: 1.5 }),
    RangeError,
  );
  assertOk(e.message.includes("queuePerCamera"));
});
