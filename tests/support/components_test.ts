import { assertEquals, assertThrows } from "../assert.ts";
import { component } from "./components.ts";

Deno.test("component() returns true for a present component, in CI or not", () => {
  assertEquals(component("tar", true, { ci: false }), true);
  assertEquals(component("tar", true, { ci: true }), true);
});

Deno.test("component() skips a missing component outside CI, with a message", () => {
  const warn = console.warn;
  const lines: string[] = [];
  console.warn = (...parts: unknown[]) => lines.push(parts.map(String).join(" "));
  try {
    assertEquals(component("mosquitto", false, { ci: false }), false);
  } finally {
    console.warn = warn;
  }
  assertEquals(lines, ["skipped: the tests that need mosquitto (it is not installed)"]);
});

Deno.test("component() fails a missing component under CI, naming it", () => {
  assertThrows(
    () => component("ffmpeg", false, { ci: true, why: "`ffmpeg -version` does not run" }),
    Error,
    "Cannot run the tests that need ffmpeg: `ffmpeg -version` does not run (CI=true)",
  );
});
