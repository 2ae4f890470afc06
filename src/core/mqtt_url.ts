/**
 * The MQTT broker URL schemes the service accepts: one list, read by the config schema
 * (what `validate` passes) and by the publisher (what it connects to).
 *
 * @module
 */

/** Schemes of an MQTT broker URL: TCP (`mqtt`, `tcp`), TLS (`mqtts`, `tls`), WebSocket (`ws`, `wss`). */
export const MQTT_SCHEMES = ["mqtt", "mqtts", "tcp", "tls", "ws", "wss"] as const;

/** One of {@linkcode MQTT_SCHEMES}. */
export type MqttScheme = typeof MQTT_SCHEMES[number];

/** The schemes of {@linkcode MQTT_SCHEMES} that use TLS (and take TLS files). */
export const MQTT_TLS_SCHEMES = ["mqtts", "tls", "wss"] as const satisfies readonly MqttScheme[];

/**
 * The scheme of a broker URL (without the colon) when it is one of
 * {@linkcode MQTT_SCHEMES}, else `undefined`.
 *
 * @example
 * ```ts
 * import { mqttScheme } from "./mqtt_url.ts";
 *
 * mqttScheme(new URL("wss://broker:8884/mqtt")); // "wss"
 * mqttScheme(new URL("http://broker")); // undefined
 * ```
 */
export function mqttScheme(url: URL): MqttScheme | undefined {
  const scheme = url.protocol.slice(0, -1);
  return (MQTT_SCHEMES as readonly string[]).includes(scheme) ? scheme as MqttScheme : undefined;
}

/** Whether a scheme of {@linkcode MQTT_SCHEMES} uses TLS. */
export function isTlsScheme(scheme: MqttScheme): boolean {
  return (MQTT_TLS_SCHEMES as readonly string[]).includes(scheme);
}
