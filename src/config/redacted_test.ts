import { assertEquals, assertOk } from "../../tests/assert.ts";
import { parsePipeline } from "./load.ts";
import { redactedConfig } from "./redacted.ts";

const TEXT = `cameras:
  - name: a
    url: rtsp://\${CAM_USER}:\${CAM_PASS}@10.0.0.5/s1
  - name: b
    url: rtsp://admin:literal-pw@10.0.0.6/s1
mqtt:
  url: mqtt://\${MQTT_HOST}:1883
  username: \${MQTT_USER}
  password: plain-in-file
`;

const ENV = {
  CAM_USER: "viewer",
  CAM_PASS: "p@ss:word",
  MQTT_HOST: "broker.local",
  MQTT_USER: "m",
};

Deno.test("redactedConfig() hides passwords, URL credentials and values from the environment", () => {
  const p = parsePipeline(TEXT, "t.yaml", { env: ENV, hostname: "h" });
  const r = redactedConfig(p);
  const text = JSON.stringify(r);
  for (
    const secret of ["viewer", "p@ss", "ss:word", "literal-pw", "plain-in-file", "broker.local"]
  ) {
    assertOk(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  assertEquals(r.cameras[0]!.url, "rtsp://***:***@10.0.0.5/s1");
  assertEquals(r.cameras[1]!.url, "rtsp://***:***@10.0.0.6/s1");
  assertEquals(r.mqtt.url, "mqtt://***:1883");
  assertEquals(r.mqtt.username, "***");
  assertEquals(r.mqtt.password, "***");
  assertEquals(r.secrets, []);
});

Deno.test("redactedConfig() leaves the original intact and other values alone", () => {
  const p = parsePipeline(TEXT, "t.yaml", { env: ENV, hostname: "h" });
  const r = redactedConfig(p);
  assertEquals(p.mqtt.password, "plain-in-file");
  assertEquals(p.cameras[0]!.url, "rtsp://viewer:p@ss:word@10.0.0.5/s1");
  assertEquals(r.cameras[0]!.name, "a");
  assertEquals(r.mqtt.clientId, "efficientad-h");
  assertEquals(r.http, p.http);
  const none = redactedConfig(parsePipeline("cameras: [{name: a, url: 'lavfi:x'}]", "n", {}));
  assertEquals(none.mqtt.password, null);
});
