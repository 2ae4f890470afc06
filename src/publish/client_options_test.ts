import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { MQTT_SCHEMES } from "../core/mqtt_url.ts";
import { clientOptions } from "./client_options.ts";

Deno.test("clientOptions() gives mqtt.js the transport of each scheme of MQTT_SCHEMES", () => {
  const transports = MQTT_SCHEMES.map((s) =>
    clientOptions({ url: `${s}://broker:1234/mqtt`, clientId: "c" }).options.protocol
  );
  assertEquals(transports, ["mqtt", "mqtts", "mqtt", "mqtts", "ws", "wss"]);
});

Deno.test("clientOptions() redacts credentials and keeps them as secrets", () => {
  const setup = clientOptions({
    url: "mqtts://edge:p%40ss@broker:8883",
    clientId: "c",
    password: "other-secret",
    will: { topic: "x/available", payload: "offline", qos: 1, retain: true },
  });
  assertEquals(setup.url, "mqtts://***:***@broker:8883");
  assertEquals([...setup.secrets].sort(), ["other-secret", "p%40ss", "p@ss"]);
  const { options } = setup;
  assertEquals([options.clientId, options.clean, options.reconnectPeriod], ["c", true, 0]);
  assertEquals([options.connectTimeout, options.keepalive], [10_000, 30]);
  assertEquals(options.password, "other-secret");
  assertOk(options.will !== undefined && String(options.will.payload) === "offline");
});

Deno.test("clientOptions() refuses other schemes, non-URLs and TLS files without TLS", () => {
  assertThrows(
    () => clientOptions({ url: "http://localhost", clientId: "c" }),
    RangeError,
    "Cannot use MQTT broker URL http://localhost: expected mqtt:// or mqtts:// " +
      "(or tcp://, tls://, ws://, wss://)",
  );
  assertThrows(
    () => clientOptions({ url: "ssl://localhost", clientId: "c" }),
    RangeError,
    "Cannot use MQTT broker URL ssl://localhost",
  );
  assertThrows(
    () => clientOptions({ url: "not a url", clientId: "c" }),
    RangeError,
    "Cannot use MQTT broker URL not a url: not a URL",
  );
  for (const url of ["mqtt://localhost", "tcp://localhost", "ws://localhost"]) {
    assertThrows(
      () =>
        clientOptions({
          url,
          clientId: "c",
          tls: { ca: "/nonexistent", rejectUnauthorized: true },
        }),
      RangeError,
      `Cannot use TLS files with MQTT broker URL ${url}: use mqtts://, tls:// or wss://`,
    );
  }
  assertThrows(
    () =>
      clientOptions({
        url: "wss://localhost",
        clientId: "c",
        tls: { ca: "/nonexistent", rejectUnauthorized: true },
      }),
    Error,
    "Cannot read MQTT TLS CA file /nonexistent",
  );
});
