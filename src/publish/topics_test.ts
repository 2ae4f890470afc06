import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { topics } from "./topics.ts";

Deno.test("topics() builds the topic tree under a prefix", () => {
  const t = topics("plant/efficientad");
  assertEquals(t.available, "plant/efficientad/available");
  assertEquals(t.stats, "plant/efficientad/stats");
  assertEquals(t.status("line-1"), "plant/efficientad/line-1/status");
  assertEquals(t.score("line-1"), "plant/efficientad/line-1/score");
  assertEquals(t.map("line-1"), "plant/efficientad/line-1/map");
  assertEquals(t.event("line-1"), "plant/efficientad/line-1/event");
  assertEquals(topics().available, "efficientad/available");
});

Deno.test("topics() rejects wildcards, empty levels and $ prefixes", () => {
  for (const bad of ["", "a/#", "a/+/b", "/a", "a/", "a//b", "$SYS"]) {
    assertThrows(() => topics(bad), RangeError, "Cannot use MQTT topic prefix");
  }
});

Deno.test("topics() rejects camera names that are not one topic level", () => {
  const t = topics();
  for (const bad of ["", "a/b", "cam+", "#"]) {
    assertThrows(() => t.score(bad), RangeError, "Cannot publish for camera");
  }
});
