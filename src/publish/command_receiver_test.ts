import { assertEquals, assertOk } from "../../tests/assert.ts";
import { CommandReceiver } from "./command_receiver.ts";
import type { Command } from "./commands.ts";
import { topics } from "./topics.ts";
import { captureLog } from "./_test_utils.ts";

function receiver(onCommand: (c: Command) => void = () => {}) {
  const { lines, logger } = captureLog();
  const r = new CommandReceiver({
    topics: topics("plant"),
    onCommand,
    logger,
    redact: (text) => text.replaceAll("s3cret", "***"),
  });
  return { r, lines };
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("CommandReceiver.subscription listens to <prefix>/+/set/+ without retained messages", () => {
  const { r } = receiver();
  assertEquals(
    [r.subscription.filter, r.subscription.qos, r.subscription.skipRetained],
    ["plant/+/set/+", 1, true],
  );
});

Deno.test("CommandReceiver.receive() hands parsed commands on and counts them", () => {
  const got: Command[] = [];
  const { r, lines } = receiver((c) => got.push(c));
  r.subscription.onMessage({
    topic: "plant/line-1/set/mark",
    payload: bytes('{"label":"normal","seq":4}'),
    retained: false,
  });
  r.receive({ topic: "plant/line-1/set/retrain", payload: bytes("drift"), retained: false });
  r.receive({ topic: "plant/line-1/score", payload: bytes("{}"), retained: false }); // not a command
  assertEquals(got, [
    { camera: "line-1", command: "mark", label: "normal", seq: 4 },
    { camera: "line-1", command: "retrain", reason: "drift" },
  ]);
  assertEquals(r.counters, { received: 2, rejected: 0 });
  assertOk(lines.some((l) => l.includes("MQTT command")));
});

Deno.test("CommandReceiver.receive() rejects retained, malformed and unknown commands", () => {
  const got: Command[] = [];
  const { r, lines } = receiver((c) => got.push(c));
  r.receive({ topic: "plant/a/set/mark", payload: bytes('{"label":"normal"}'), retained: true });
  r.receive({ topic: "plant/a/set/mark", payload: bytes("{nope"), retained: false });
  r.receive({ topic: "plant/a/set/explode", payload: bytes(""), retained: false });
  assertEquals(got, []);
  assertEquals(r.counters, { received: 0, rejected: 3 });
  assertOk(lines.some((l) => l.includes("ignoring a retained MQTT command")));
  assertEquals(lines.filter((l) => l.includes("ignoring a malformed MQTT command")).length, 2);
  assertOk(lines.some((l) => l.includes("unknown command")));
});

Deno.test("CommandReceiver.receive() logs a failing handler, redacted, and goes on", () => {
  let calls = 0;
  const { r, lines } = receiver(() => {
    calls++;
    throw new Error("bad s3cret");
  });
  r.receive({ topic: "plant/a/set/cancel", payload: bytes(""), retained: false });
  r.receive({ topic: "plant/a/set/rollback", payload: bytes(""), retained: false });
  assertEquals([calls, r.counters.received], [2, 2]);
  const failed = lines.filter((l) => l.includes("the MQTT command handler failed"));
  assertEquals(failed.length, 2);
  assertOk(failed.every((l) => l.includes("bad ***") && !l.includes("s3cret")), failed.join("\n"));
});
