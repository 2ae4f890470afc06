import { parse } from "yaml";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { displayPipeline } from "./display.ts";
import { parsePipeline } from "./load.ts";

const TEXT = `cameras:
  - name: a
    url: rtsp://u:\${PASS}@cam/1
mqtt:
  url: mqtt://broker
  username: u
  password: \${PASS}
`;

Deno.test("displayPipeline() prints YAML with snake_case keys and no secrets", () => {
  const p = parsePipeline(TEXT, "t.yaml", { env: { PASS: "hunter22" }, hostname: "h" });
  const text = displayPipeline(p);
  assertOk(text.startsWith("# t.yaml: resolved, every default filled in, secrets shown as ***\n"));
  assertOk(!text.includes("hunter22"));
  const data = parse(text);
  assertEquals(data.mqtt.password, "***");
  assertEquals(data.mqtt.client_id, "efficientad-h");
  assertEquals(data.cameras[0].stall_timeout_ms, 5000);
  assertEquals(data.cameras[0].url, "rtsp://***:***@cam/1");
});

Deno.test("displayPipeline() prints the resolved form as JSON", () => {
  const p = parsePipeline(TEXT, "t.yaml", { env: { PASS: "hunter22" }, hostname: "h" });
  const data = JSON.parse(displayPipeline(p, { format: "json" }));
  assertEquals(data.mqtt.clientId, "efficientad-h");
  assertEquals(data.mqtt.password, "***");
  assertEquals(data.secrets, undefined);
});

Deno.test("displayPipeline() shows the model's precision, default fp32", () => {
  const fp32 = parse(displayPipeline(parsePipeline(TEXT, "t.yaml", { env: { PASS: "x" } })));
  assertEquals(fp32.model.precision, "fp32");
  const text = TEXT + "model:\n  precision: int8\n";
  const int8 = parsePipeline(text, "t.yaml", { env: { PASS: "x" } });
  assertEquals(parse(displayPipeline(int8)).model.precision, "int8");
  assertEquals(JSON.parse(displayPipeline(int8, { format: "json" })).model.precision, "int8");
});
