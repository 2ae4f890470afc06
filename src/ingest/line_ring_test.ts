import { assertEquals } from "../../tests/assert.ts";
import { redact } from "../core/redact.ts";
import { LineRing } from "./line_ring.ts";

Deno.test("LineRing() keeps the last lines, joined across chunks and redacted", () => {
  const ring = new LineRing(2, (l) => redact(l));
  ring.write("one\ntw");
  ring.write("o\r\n\nrtsp://admin:pw@cam/1: Connection refused\rpartial");
  assertEquals(ring.lines(), ["two", "rtsp://***:***@cam/1: Connection refused"]);
  ring.flush();
  assertEquals(ring.lines(), ["rtsp://***:***@cam/1: Connection refused", "partial"]);
  assertEquals(ring.last(), "partial");
});
