import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { parseCommand } from "./commands.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("parseCommand() parses mark, retrain, cancel and rollback", () => {
  assertEquals(parseCommand("cam", "mark", bytes('{"label":"normal"}')), {
    camera: "cam",
    command: "mark",
    label: "normal",
  });
  assertEquals(parseCommand("cam", "mark", bytes('{"seq": 42, "label": "anomalous"}')), {
    camera: "cam",
    command: "mark",
    label: "anomalous",
    seq: 42,
  });
  assertEquals(parseCommand("cam", "retrain", bytes("")), { camera: "cam", command: "retrain" });
  assertEquals(parseCommand("cam", "retrain", bytes(" new batch ")), {
    camera: "cam",
    command: "retrain",
    reason: "new batch",
  });
  assertEquals(parseCommand("cam", "retrain", bytes('{"reason":"lighting"}')), {
    camera: "cam",
    command: "retrain",
    reason: "lighting",
  });
  assertEquals(parseCommand("cam", "retrain", bytes("x".repeat(500))).command, "retrain");
  assertEquals(parseCommand("cam", "cancel", bytes("anything")), {
    camera: "cam",
    command: "cancel",
  });
  assertEquals(parseCommand("cam", "rollback", bytes("")), { camera: "cam", command: "rollback" });
});

Deno.test("parseCommand() rejects malformed payloads and unknown commands", () => {
  const bad: Array<[string, string, string]> = [
    ["mark", "", "not JSON"],
    ["mark", "normal", "not JSON"],
    ["mark", "[1]", "not a JSON object"],
    ["mark", '{"label":"weird"}', '"label" must be'],
    ["mark", "{}", '"label" must be'],
    ["mark", '{"label":"normal","seq":-1}', '"seq" must be'],
    ["mark", '{"label":"normal","seq":1.5}', '"seq" must be'],
    ["mark", '{"label":"normal","sq":1}', 'unknown key "sq"'],
    ["retrain", '{"reason":3}', '"reason" must be a string'],
    ["retrain", '{"why":"x"}', 'unknown key "why"'],
    ["reboot", "", "unknown command"],
  ];
  for (const [command, payload, message] of bad) {
    assertThrows(
      () => parseCommand("cam", command, bytes(payload)),
      TypeError,
      message,
    );
  }
  assertThrows(
    () => parseCommand("cam", "mark", new Uint8Array([0xff, 0xfe])),
    TypeError,
    "not UTF-8",
  );
});
