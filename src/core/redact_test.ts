import { assertEquals } from "../../tests/assert.ts";
import { redact } from "./redact.ts";

Deno.test("redact() hides user and password of URLs in text", () => {
  assertEquals(
    redact("cannot open rtsp://admin:hunter2@10.0.0.5:554/s1 (timeout)"),
    "cannot open rtsp://***:***@10.0.0.5:554/s1 (timeout)",
  );
  assertEquals(redact("rtsp://user@cam/x"), "rtsp://***:***@cam/x");
  assertEquals(redact("rtsp://cam/x and file.mp4"), "rtsp://cam/x and file.mp4");
});

Deno.test("redact() hides listed secrets wherever they appear", () => {
  assertEquals(redact("password=s3cret!", ["s3cret!"]), "password=***");
});

Deno.test("redact() hides a listed password that holds @ and : inside a URL", () => {
  const out = redact("rtsp://viewer:p@ss:word@h/s", ["p@ss:word"]);
  assertEquals(out.includes("ss:word"), false);
});
