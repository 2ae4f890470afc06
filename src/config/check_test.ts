import { assertEquals, assertOk } from "../../tests/assert.ts";
import { checkPipeline } from "./check.ts";

const CAMERA = { name: "cam", url: "lavfi:testsrc2" };

Deno.test("checkPipeline() returns the typed file when it is valid", () => {
  const r = checkPipeline({ cameras: [CAMERA], http: { port: 9000 } });
  assertOk(r.ok);
  assertEquals(r.file.http?.port, 9000);
});

Deno.test("checkPipeline() reports unknown keys with a suggestion", () => {
  const r = checkPipeline({ cameras: [{ ...CAMERA, fsp: 5, colour: "red" }], mqtt: { QoS: 1 } });
  assertOk(!r.ok);
  assertEquals(r.issues.map((i) => `${i.path}: ${i.message}`), [
    'cameras[0].fsp: unknown key (did you mean "fps"?)',
    "cameras[0].colour: unknown key",
    'mqtt.QoS: unknown key (did you mean "qos"?)',
  ]);
});

Deno.test("checkPipeline() says a missing key is required", () => {
  const r = checkPipeline({ cameras: [{ name: "a" }] });
  assertOk(!r.ok);
  assertEquals(r.issues, [{ path: "cameras[0].url", line: undefined, message: "is required" }]);
  const empty = checkPipeline(null);
  assertOk(!empty.ok);
  assertEquals(empty.issues.map((i) => `${i.path}: ${i.message}`), ["cameras: is required"]);
});

Deno.test("checkPipeline() reports duplicate camera names even when other cameras are invalid", () => {
  const r = checkPipeline({ cameras: [CAMERA, { ...CAMERA, fps: -1 }] });
  assertOk(!r.ok);
  assertEquals(r.issues.map((i) => `${i.path}: ${i.message}`), [
    'cameras[1].name: duplicate camera name "cam" (also cameras[0])',
    "cameras[1].fps: expected a positive number",
  ]);
});

Deno.test("checkPipeline() asks lineOf for lines and sorts by them", () => {
  const lines: Record<string, number> = { "cameras,0,fps": 9, "mqtt,qos": 3 };
  const r = checkPipeline(
    { cameras: [{ ...CAMERA, fps: "x" }], mqtt: { qos: 5 } },
    { lineOf: (path) => lines[path.join(",")] ?? 1 },
  );
  assertOk(!r.ok);
  assertEquals(r.issues, [
    { path: "mqtt.qos", line: 3, message: "expected 0, 1 or 2" },
    { path: "cameras[0].fps", line: 9, message: "expected a positive number" },
  ]);
});

Deno.test("checkPipeline() skips paths already reported, but not unknown keys", () => {
  const r = checkPipeline(
    { cameras: [CAMERA], http: { port: "${PORT}", prot: "${X}" } },
    { skip: new Set(["http.port", "http.prot"]) },
  );
  assertOk(!r.ok);
  assertEquals(r.issues.map((i) => i.path), ["http.prot"]);
});
