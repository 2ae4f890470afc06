import { LineCounter, parseDocument } from "yaml";
import { assertEquals } from "../../tests/assert.ts";
import { expandEnv, substituteEnv } from "./env.ts";

Deno.test("expandEnv() replaces ${VAR} and records the values as secrets", () => {
  assertEquals(expandEnv("rtsp://${U}:${P}@cam/1", { U: "admin", P: "s3cret" }), {
    value: "rtsp://admin:s3cret@cam/1",
    fromEnv: ["admin", "s3cret"],
    errors: [],
  });
});

Deno.test("expandEnv() uses ${VAR:-default} when the variable is unset or empty", () => {
  assertEquals(expandEnv("${H:-localhost}:${P:-1883}", { P: "" }).value, "localhost:1883");
  assertEquals(expandEnv("${H:-localhost}", { H: "broker" }).value, "broker");
  assertEquals(expandEnv("${H:-}", {}).value, "");
  assertEquals(expandEnv("${H:-localhost}", {}).fromEnv, []);
});

Deno.test("expandEnv() keeps $$ and lone $ as text", () => {
  assertEquals(expandEnv("a$$b $x $", {}).value, "a$b $x $");
  assertEquals(expandEnv("$${NOT_A_VAR}", {}).value, "${NOT_A_VAR}");
});

Deno.test("expandEnv() reports unset variables and bad references", () => {
  assertEquals(expandEnv("${A}/${B}", { A: "x" }).errors, [
    "environment variable B is not set",
  ]);
  assertEquals(expandEnv("${1X}", {}).errors, [
    'invalid variable reference "${1X}": expected ${NAME} or ${NAME:-default}',
  ]);
  assertEquals(expandEnv("abc ${OPEN", {}).errors, [
    'unclosed "${": expected ${NAME} or ${NAME:-default} (write $$ for a $)',
  ]);
});

Deno.test("substituteEnv() types whole unquoted references and keeps quoted ones as text", () => {
  const counter = new LineCounter();
  const doc = parseDocument(
    'port: ${PORT}\nquoted: "${PORT}"\nflag: ${ON}\nname: ${NAME}\nkey${X}: 1\n',
    { lineCounter: counter },
  );
  const s = substituteEnv({ doc, counter }, { PORT: "1883", ON: "true", NAME: "cam-7" });
  assertEquals(s.issues, []);
  assertEquals(doc.toJS(), {
    port: 1883,
    quoted: "1883",
    flag: true,
    name: "cam-7",
    "key${X}": 1,
  });
  assertEquals(s.secrets, ["1883", "cam-7"]);
});

Deno.test("substituteEnv() names the key, its line and the variable", () => {
  const counter = new LineCounter();
  const doc = parseDocument("mqtt:\n  username: u\n  password: ${MQTT_PASS}\n", {
    lineCounter: counter,
  });
  const s = substituteEnv({ doc, counter }, {});
  assertEquals(s.issues, [{
    path: "mqtt.password",
    line: 3,
    message: "environment variable MQTT_PASS is not set",
  }]);
  assertEquals([...s.failedPaths], ["mqtt.password"]);
});
