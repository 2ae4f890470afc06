import { assertEquals } from "../../tests/assert.ts";
import { editDistance, suggestKey } from "./suggest.ts";

Deno.test("editDistance() counts a swap of neighbours as one edit", () => {
  assertEquals(editDistance("fsp", "fps"), 1);
  assertEquals(editDistance("kitten", "sitting"), 3);
  assertEquals(editDistance("", "abc"), 3);
  assertEquals(editDistance("same", "same"), 0);
});

Deno.test("suggestKey() finds typos and camelCase spellings", () => {
  const camera = ["name", "url", "fps", "roi", "rtsp_transport", "loop", "stall_timeout_ms"];
  assertEquals(suggestKey("fsp", camera), "fps");
  assertEquals(suggestKey("rtspTransport", camera), "rtsp_transport");
  assertEquals(suggestKey("stall-timeout-ms", camera), "stall_timeout_ms");
  assertEquals(suggestKey("treshold", ["threshold", "threads"]), "threshold");
});

Deno.test("suggestKey() stays quiet when nothing is close", () => {
  assertEquals(suggestKey("colour", ["name", "url", "fps"]), undefined);
  assertEquals(suggestKey("x", []), undefined);
});
