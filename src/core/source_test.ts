import { assertEquals } from "../../tests/assert.ts";
import { classifySource } from "./source.ts";

Deno.test("classifySource() tells every form apart and never quotes the text", () => {
  const kinds = [
    "rtsp://u:p@cam/1",
    "rtsps://cam/1",
    "lavfi:testsrc2",
    "v4l2:/dev/video1",
    "/dev/video0",
    "file:///data/a.mp4",
    "file:clip.mp4",
    "clips/a.mp4",
  ].map((t) => {
    const r = classifySource(t);
    return r.ok ? r.source.kind : r.message;
  });
  assertEquals(kinds, ["rtsp", "rtsp", "lavfi", "v4l2", "v4l2", "file", "file", "file"]);
  assertEquals(classifySource("rtsps://cam/1"), {
    ok: true,
    source: { kind: "rtsp", url: "rtsps://cam/1", tls: true },
  });
  for (const bad of ["", "http://u:secret@cam/", "rtmp:stream", "lavfi:", "v4l2:video0"]) {
    const r = classifySource(bad);
    assertEquals(r.ok, false, bad);
    assertEquals(!r.ok && r.message.includes("secret"), false);
  }
});
