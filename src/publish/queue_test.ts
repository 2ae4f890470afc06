import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { type OutgoingMessage, OutgoingQueue } from "./queue.ts";

function msg(topic: string, qos: 0 | 1 | 2 = 0, retain = false, payload = topic): OutgoingMessage {
  return { topic, payload, qos, retain };
}

function drain(q: OutgoingQueue): string[] {
  const out: string[] = [];
  for (let m = q.shift(); m !== undefined; m = q.shift()) out.push(String(m.payload));
  return out;
}

Deno.test("OutgoingQueue() drops the oldest QoS 0 message first when full", () => {
  const q = new OutgoingQueue(3);
  assertEquals(q.push(msg("event-1", 1)), 0);
  q.push(msg("score-1"));
  q.push(msg("score-2"));
  assertEquals(q.push(msg("event-2", 1)), 1);
  assertEquals(q.dropped, 1);
  assertEquals(drain(q), ["event-1", "score-2", "event-2"]);
});

Deno.test("OutgoingQueue() drops the oldest message when all are QoS 1", () => {
  const q = new OutgoingQueue(2);
  q.push(msg("a", 1));
  q.push(msg("b", 1));
  q.push(msg("c", 1));
  assertEquals([q.length, q.dropped], [2, 1]);
  assertEquals(drain(q), ["b", "c"]);
});

Deno.test("OutgoingQueue() keeps only the latest retained message of a topic", () => {
  const q = new OutgoingQueue(10);
  q.push(msg("status/a", 1, true, "starting"));
  q.push(msg("score", 0));
  q.push(msg("status/a", 1, true, "online"));
  assertEquals([q.length, q.dropped], [2, 0]);
  assertEquals(drain(q), ["score", "online"]);
});

Deno.test("OutgoingQueue.requeue() puts messages back at the front, in order", () => {
  const q = new OutgoingQueue(4);
  q.push(msg("c", 1));
  q.push(msg("d", 1));
  q.push(msg("status", 1, true, "new"));
  assertEquals(q.requeue([msg("a", 1), msg("b", 1), msg("status", 1, true, "old")]), 1);
  // the older retained status is superseded by the queued one; then one over the limit
  assertEquals(drain(q), ["b", "c", "d", "new"]);
});

Deno.test("OutgoingQueue() rejects a limit below 1", () => {
  assertThrows(() => new OutgoingQueue(0), RangeError, "Cannot make outgoing queue");
});

Deno.test("OutgoingQueue() never replaces a retained message marked replaceable: false", () => {
  const q = new OutgoingQueue(10);
  q.push(msg("model/a", 1, true, "training 1"));
  q.push(msg("model/a", 1, true, "training 2"));
  q.push({ ...msg("model/a", 1, true, "promoted"), replaceable: false });
  q.push(msg("model/a", 1, true, "idle"));
  assertEquals(q.requeue([{ ...msg("model/a", 1, true, "validating"), replaceable: false }]), 0);
  // "training 2" gave way to "idle" (both replaceable); the kept steps stay, in order
  assertEquals(drain(q), ["validating", "promoted", "idle"]);
});
