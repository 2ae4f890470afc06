import { assertEquals } from "../../tests/assert.ts";
import { formatDuration } from "./duration.ts";

Deno.test("formatDuration() prints hours, minutes and seconds", () => {
  assertEquals(formatDuration(5), "5s");
  assertEquals(formatDuration(65), "1m05s");
  assertEquals(formatDuration(3723), "1h02m03s");
  assertEquals(formatDuration(NaN), "?");
});
