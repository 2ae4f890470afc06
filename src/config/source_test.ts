import { assertEquals, assertOk } from "../../tests/assert.ts";
import { parseSource } from "./source.ts";

Deno.test("parseSource() tells rtsp, lavfi, v4l2 and file sources apart", () => {
  assertEquals(parseSource("rtsp://u:p@10.0.0.5:554/s1", "/base"), {
    ok: true,
    source: { kind: "rtsp", url: "rtsp://u:p@10.0.0.5:554/s1", tls: false },
  });
  assertEquals(parseSource("rtsps://cam/s", "/base").ok, true);
  assertEquals(parseSource("lavfi:testsrc2=size=640x480:rate=10", "/base"), {
    ok: true,
    source: { kind: "lavfi", graph: "testsrc2=size=640x480:rate=10" },
  });
  assertEquals(parseSource("v4l2:/dev/video0", "/base"), {
    ok: true,
    source: { kind: "v4l2", device: "/dev/video0" },
  });
  assertEquals(parseSource("/dev/video2", "/base"), {
    ok: true,
    source: { kind: "v4l2", device: "/dev/video2" },
  });
});

Deno.test("parseSource() makes file paths absolute against the base directory", () => {
  assertEquals(parseSource("clips/a.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/base/clips/a.mp4" },
  });
  assertEquals(parseSource("/data/a.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/data/a.mp4" },
  });
  assertEquals(parseSource("file:///data/a%20b.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/data/a b.mp4" },
  });
});

Deno.test("parseSource() refuses other schemes without quoting the URL", () => {
  const http = parseSource("http://admin:hunter2@cam/x", "/");
  assertOk(!http.ok);
  assertOk(http.message.startsWith("unsupported source scheme http://"));
  assertOk(!http.message.includes("hunter2"));
  const typo = parseSource("lavfl:testsrc2", "/");
  assertOk(!typo.ok && typo.message.startsWith("unsupported source prefix lavfl"));
  const empty = parseSource("lavfi:", "/");
  assertOk(!empty.ok && empty.message === "expected a filtergraph after lavfi:");
  const device = parseSource("v4l2:video0", "/");
  assertOk(!device.ok && device.message.includes("v4l2:/dev/video0"));
  assertEquals(parseSource("  ", "/").ok, false);
  assertEquals(parseSource("rtsp://", "/").ok, false);
});
