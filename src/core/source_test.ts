import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { classifySource, describeSource, parseSource, sourceSecrets } from "./source.ts";

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

Deno.test("parseSource() recognises every source kind", () => {
  assertEquals(parseSource("rtsp://10.0.0.5:554/s1"), {
    kind: "rtsp",
    url: "rtsp://10.0.0.5:554/s1",
    tls: false,
  });
  assertEquals(parseSource("RTSPS://cam/s1"), { kind: "rtsp", url: "RTSPS://cam/s1", tls: true });
  assertEquals(parseSource("lavfi:testsrc=size=64x48"), {
    kind: "lavfi",
    graph: "testsrc=size=64x48",
  });
  assertEquals(parseSource("/dev/video2"), { kind: "v4l2", device: "/dev/video2" });
  assertEquals(parseSource("v4l2:/dev/cam"), { kind: "v4l2", device: "/dev/cam" });
  assertEquals(parseSource("videos/line.mp4"), { kind: "file", path: "videos/line.mp4" });
  assertEquals(parseSource("file:/data/a:b.mp4"), { kind: "file", path: "/data/a:b.mp4" });
});

Deno.test("parseSource() rejects unsupported schemes with credentials redacted", () => {
  const e = assertThrows(
    () => parseSource("http://admin:hunter2@cam/mjpeg"),
    TypeError,
    "Cannot parse camera source http://***:***@cam/mjpeg: unsupported source scheme http://",
  );
  assertEquals(e.message.includes("hunter2"), false);
  assertThrows(() => parseSource(""), TypeError, "expected a source");
  assertThrows(() => parseSource("lavfi:"), TypeError, "expected a filtergraph after lavfi:");
});

Deno.test("sourceSecrets() returns the password, raw and decoded", () => {
  assertEquals(sourceSecrets(parseSource("rtsp://admin:p%40ss@cam/1")), ["p%40ss", "p@ss"]);
  assertEquals(sourceSecrets(parseSource("rtsp://admin@cam/1")), []);
  assertEquals(sourceSecrets(parseSource("lavfi:testsrc")), []);
});

Deno.test("describeSource() redacts RTSP credentials", () => {
  assertEquals(
    describeSource(parseSource("rtsp://admin:hunter2@10.0.0.5/s1")),
    "rtsp://***:***@10.0.0.5/s1",
  );
  assertEquals(describeSource(parseSource("lavfi:color=c=red")), "lavfi:color=c=red");
});
