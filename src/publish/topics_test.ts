import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { matchesFilter, topics } from "./topics.ts";
import { DEFAULT_PREFIX } from "./_test_utils.ts";

Deno.test("topics() builds the topic tree under a prefix", () => {
  const t = topics("plant/efficientad");
  assertEquals(t.available, "plant/efficientad/available");
  assertEquals(t.stats, "plant/efficientad/stats");
  assertEquals(t.status("line-1"), "plant/efficientad/line-1/status");
  assertEquals(t.score("line-1"), "plant/efficientad/line-1/score");
  assertEquals(t.map("line-1"), "plant/efficientad/line-1/map");
  assertEquals(t.event("line-1"), "plant/efficientad/line-1/event");
  assertEquals(topics(DEFAULT_PREFIX).available, "efficientad/available");
});

Deno.test("topics() rejects wildcards, empty levels and $ prefixes", () => {
  for (const bad of ["", "a/#", "a/+/b", "/a", "a/", "a//b", "$SYS"]) {
    assertThrows(() => topics(bad), RangeError, "Cannot use MQTT topic prefix");
  }
});

Deno.test("topics() rejects camera names that are not one topic level", () => {
  const t = topics(DEFAULT_PREFIX);
  for (const bad of ["", "a/b", "cam+", "#"]) {
    assertThrows(() => t.score(bad), RangeError, "Cannot publish for camera");
  }
});

Deno.test("topics() builds and matches the model and command topics", () => {
  const t = topics("plant/efficientad");
  assertEquals(t.model("line-1"), "plant/efficientad/line-1/model");
  assertEquals(t.command("line-1", "mark"), "plant/efficientad/line-1/set/mark");
  assertEquals(t.commandFilter, "plant/efficientad/+/set/+");
  assertEquals(t.matchCommand("plant/efficientad/line-1/set/retrain"), {
    camera: "line-1",
    command: "retrain",
  });
  for (
    const other of [
      "plant/efficientad/line-1/score",
      "x/line-1/set/mark",
      "plant/efficientad/a/set/b/c",
    ]
  ) {
    assertEquals(t.matchCommand(other), undefined);
  }
});

Deno.test("matchesFilter() follows the MQTT wildcards", () => {
  const cases: [string, string, boolean][] = [
    ["a/+/set/+", "a/line-1/set/mark", true],
    ["a/+/set/+", "a/line-1/set/mark/x", false],
    ["a/+/set/+", "a/line-1/score", false],
    ["a/#", "a/line-1/score", true],
    ["a/#", "a", true],
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["+/x", "$SYS/x", false],
    ["#", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
  ];
  for (const [filter, topic, expected] of cases) {
    assertEquals(matchesFilter(filter, topic), expected, `${filter} ${topic}`);
  }
});
