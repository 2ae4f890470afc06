/**
 * What mqtt.js is given for a broker URL: the URL checked against {@linkcode MQTT_SCHEMES},
 * the transport of its scheme, the TLS files read, the last will and the credentials, and
 * the secrets that log lines must never show.
 *
 * mqtt.js speaks every scheme of the list, but takes a client certificate only under its
 * own names of the transports (`mqtts`, `wss`), so `tcp` is given as `mqtt` and `tls` as
 * `mqtts`. With `ws` and `wss` the URL path is the WebSocket path (mqtt.js default `/`).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IClientOptions, MqttProtocol } from "mqtt";
import { isTlsScheme, MQTT_SCHEMES, type MqttScheme, mqttScheme } from "../core/mqtt_url.ts";
import { redact } from "../core/redact.ts";
import { readTlsFiles, type TlsFileOptions } from "./tls_files.ts";

/** The message the broker publishes for the client when its connection dies. */
export interface LastWill {
  readonly topic: string;
  readonly payload: string;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

/** Options of {@linkcode clientOptions}. */
export interface ClientOptionsInput {
  /** The broker, `<scheme>://host:port[/path]` with a scheme of {@linkcode MQTT_SCHEMES}. */
  readonly url: string;
  readonly clientId: string;
  /** TLS files (a TLS scheme only: `mqtts`, `tls`, `wss`), read here. */
  readonly tls?: TlsFileOptions;
  readonly username?: string;
  readonly password?: string;
  readonly will?: LastWill;
  /** Give up a connection attempt after this long, ms. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /** MQTT keep-alive, seconds. Default 30. */
  readonly keepaliveS?: number;
}

/** The result of {@linkcode clientOptions}. */
export interface ClientSetup {
  /** The URL with its credentials redacted, for log lines. */
  readonly url: string;
  /** The password, as given and as found in the URL (raw and decoded), for `redact()`. */
  readonly secrets: readonly string[];
  /** mqtt.js options, less `protocolVersion` (the connection's choice, per attempt). */
  readonly options: IClientOptions;
}

/** The mqtt.js transport of each scheme. */
const TRANSPORT: Record<MqttScheme, MqttProtocol> = {
  mqtt: "mqtt",
  tcp: "mqtt",
  mqtts: "mqtts",
  tls: "mqtts",
  ws: "ws",
  wss: "wss",
};

/**
 * Checks a broker URL and builds the mqtt.js options for it (no automatic reconnect, no
 * resubscribe, clean session, QoS 0 not queued by mqtt.js: the connection does all that).
 *
 * @throws {RangeError} "Cannot use MQTT broker URL ..." when the URL is not one, or of
 * another scheme; "Cannot use TLS files with MQTT broker URL ..." for a URL without TLS.
 * @throws {Error} when a TLS file cannot be read ("Cannot read MQTT TLS ... file").
 *
 * @example
 * ```ts
 * import { clientOptions } from "./client_options.ts";
 *
 * clientOptions({ url: "tls://edge:pw@broker:8883", clientId: "c1" }).options.protocol; // "mqtts"
 * ```
 */
export function clientOptions(input: ClientOptionsInput): ClientSetup {
  let parsed: URL;
  try {
    parsed = new URL(input.url);
  } catch {
    throw new RangeError(`Cannot use MQTT broker URL ${redact(input.url)}: not a URL`);
  }
  const scheme = mqttScheme(parsed);
  if (scheme === undefined) {
    const others = MQTT_SCHEMES.filter((s) => s !== "mqtt" && s !== "mqtts");
    throw new RangeError(
      `Cannot use MQTT broker URL ${redact(input.url)}: expected mqtt:// or mqtts:// (or ${
        others.map((s) => `${s}://`).join(", ")
      })`,
    );
  }
  if (input.tls !== undefined && !isTlsScheme(scheme)) {
    throw new RangeError(
      `Cannot use TLS files with MQTT broker URL ${
        redact(input.url)
      }: use mqtts://, tls:// or wss://`,
    );
  }
  const secrets = [input.password, parsed.password, safeDecode(parsed.password)]
    .filter((s): s is string => s !== undefined && s !== "");
  const will = input.will;
  return {
    url: redact(input.url, secrets),
    secrets,
    options: {
      protocol: TRANSPORT[scheme],
      clientId: input.clientId,
      clean: true,
      reconnectPeriod: 0, // reconnects are the connection's: backoff, a fresh client each time
      connectTimeout: input.connectTimeoutMs ?? 10_000,
      keepalive: input.keepaliveS ?? 30,
      queueQoSZero: false,
      resubscribe: false,
      ...(will !== undefined
        ? {
          will: {
            topic: will.topic,
            payload: Buffer.from(will.payload),
            qos: will.qos,
            retain: will.retain,
          },
        }
        : {}),
      ...(input.username !== undefined ? { username: input.username } : {}),
      ...(input.password !== undefined ? { password: input.password } : {}),
      ...(input.tls !== undefined ? readTlsFiles(input.tls) : {}),
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
