import { assertEquals, assertOk } from "../../tests/assert.ts";
import { resolveSource } from "./source.ts";

Deno.test("resolveSource() tells rtsp, lavfi, v4l2 and file sources apart", () => {
  assertEquals(resolveSource("rtsp://u:p@10.0.0.5:554/s1", "/base"), {
    ok: true,
    source: { kind: "rtsp", url: "rtsp://u:p@10.0.0.5:554/s1", tls: false },
  });
  assertEquals(resolveSource("rtsps://cam/s", "/base").ok, true);
  assertEquals(resolveSource("lavfi:testsrc2=size=640x480:rate=10", "/base"), {
    ok: true,
    source: { kind: "lavfi", graph: "testsrc2=size=640x480:rate=10" },
  });
  assertEquals(resolveSource("v4l2:/dev/video0", "/base"), {
    ok: true,
    source: { kind: "v4l2", device: "/dev/video0" },
  });
  assertEquals(resolveSource("/dev/video2", "/base"), {
    ok: true,
    source: { kind: "v4l2", device: "/dev/video2" },
  });
});

Deno.test("resolveSource() makes file paths absolute against the base directory", () => {
  assertEquals(resolveSource("clips/a.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/base/clips/a.mp4" },
  });
  assertEquals(resolveSource("/data/a.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/data/a.mp4" },
  });
  assertEquals(resolveSource("file:///data/a%20b.mp4", "/base"), {
    ok: true,
    source: { kind: "file", path: "/data/a b.mp4" },
  });
});

Deno.test("resolveSource() refuses other schemes without quoting the URL", () => {
  const http = resolveSource("http://admin:hunter2@cam/x", "/");
  assertOk(!http.ok);
  assertOk(http.message.startsWith("unsupported source scheme http://"));
  assertOk(!http.message.includes("hunter2"));
  const typo = resolveSource("lavfl:testsrc2", "/");
  assertOk(!typo.ok && typo.message.startsWith("unsupported source prefix lavfl"));
  const empty = resolveSource("lavfi:", "/");
  assertOk(!empty.ok && empty.message === "expected a filtergraph after lavfi:");
  const device = resolveSource("v4l2:video0", "/");
  assertOk(!device.ok && device.message.includes("v4l2:/dev/video0"));
  assertEquals(resolveSource("  ", "/").ok, false);
  assertEquals(resolveSource("rtsp://", "/").ok, false);
});
