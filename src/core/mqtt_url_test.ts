import { assertEquals } from "../../tests/assert.ts";
import { isTlsScheme, MQTT_SCHEMES, MQTT_TLS_SCHEMES, mqttScheme } from "./mqtt_url.ts";

Deno.test("mqttScheme() names the scheme of a broker URL, or undefined for another scheme", () => {
  assertEquals(mqttScheme(new URL("mqtt://h:1883")), "mqtt");
  assertEquals(mqttScheme(new URL("wss://h:8884/mqtt")), "wss");
  assertEquals(mqttScheme(new URL("ssl://h")), undefined);
  assertEquals(mqttScheme(new URL("http://h")), undefined);
  assertEquals(MQTT_SCHEMES.filter(isTlsScheme), [...MQTT_TLS_SCHEMES]);
});
