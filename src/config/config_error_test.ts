import { assertEquals, assertOk } from "../../tests/assert.ts";
import { ConfigError, formatIssue, formatPath } from "./config_error.ts";

Deno.test("formatPath() writes keys with dots and list indices in brackets", () => {
  assertEquals(formatPath(["cameras", 1, "roi", "width"]), "cameras[1].roi.width");
  assertEquals(formatPath(["mqtt", "qos"]), "mqtt.qos");
  assertEquals(formatPath(["mqtt", "bad key"]), 'mqtt["bad key"]');
  assertEquals(formatPath([]), "");
});

Deno.test("formatIssue() reads path (line N): message", () => {
  assertEquals(
    formatIssue({ path: "mqtt.qos", line: 30, message: "expected 0, 1 or 2" }),
    "mqtt.qos (line 30): expected 0, 1 or 2",
  );
  assertEquals(
    formatIssue({ path: "mqtt.qos", line: undefined, message: "expected 0, 1 or 2" }),
    "mqtt.qos: expected 0, 1 or 2",
  );
  assertEquals(
    formatIssue({ path: "", line: 4, message: "YAML syntax: map keys must be unique" }),
    "line 4: YAML syntax: map keys must be unique",
  );
});

Deno.test("ConfigError() puts one issue on one line and lists several", () => {
  const one = new ConfigError("a.yaml", [{ path: "http.port", line: 3, message: "bad" }]);
  assertEquals(one.message, "Cannot load pipeline a.yaml: http.port (line 3): bad");
  assertEquals(one.name, "ConfigError");
  assertEquals(one.file, "a.yaml");
  const two = new ConfigError("a.yaml", [
    { path: "x", line: 1, message: "one" },
    { path: "y", line: 2, message: "two" },
  ]);
  assertEquals(
    two.message,
    "Cannot load pipeline a.yaml: 2 problems\n  x (line 1): one\n  y (line 2): two",
  );
  assertEquals(two.issues.length, 2);
  assertOk(two instanceof Error);
});
