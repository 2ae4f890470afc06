import { assertEquals } from "../../tests/assert.ts";
import { redact, urlSecrets } from "./redact.ts";

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

Deno.test("urlSecrets() returns a URL's password, raw and decoded", () => {
  assertEquals(urlSecrets("mqtt://u:p%40ss@broker:1883"), ["p%40ss", "p@ss"]);
  assertEquals(urlSecrets("rtsp://u:plain@cam/1"), ["plain"]);
  assertEquals(urlSecrets("rtsp://u@cam/1"), []);
  assertEquals(urlSecrets("lavfi:testsrc"), []);
  assertEquals(urlSecrets(""), []);
});
