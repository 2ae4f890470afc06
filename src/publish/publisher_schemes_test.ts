/**
 * Every broker URL scheme that the config schema accepts (`MQTT_SCHEMES`), published
 * through by {@linkcode MqttPublisher} to a real mosquitto listener of that transport: TCP,
 * TLS, WebSocket and WebSocket over TLS. The TLS listeners require a client certificate,
 * which mqtt.js takes only under its own names of the transports (`tls` is `mqtts`).
 */
import { MQTT_SCHEMES, type MqttScheme } from "../core/mqtt_url.ts";
import { assertEquals } from "../../tests/assert.ts";
import {
  HAS_MOSQUITTO,
  HAS_MOSQUITTO_WEBSOCKETS,
  HAS_OPENSSL,
  makeTestCertificates,
  Mosquitto,
  type TestCertificates,
} from "../../tests/support/mosquitto.ts";
import type { ScoreMessage } from "./payloads.ts";
import {
  captureLog,
  deadline,
  DEFAULT_REJECT_UNAUTHORIZED,
  syntheticScoredFrame,
  testPublisher,
} from "./_test_utils.ts";
import { payloadJson, TestSubscriber } from "../../tests/support/mqtt_subscriber.ts";

interface Brokers {
  /** Plain TCP and WebSocket listeners. */
  readonly plain: Mosquitto;
  /** TLS and WebSocket-over-TLS listeners, client certificate required. */
  readonly secure: Mosquitto;
}

/** The URL of each scheme; the type makes a scheme added to the list fail to compile here. */
const URLS: Record<MqttScheme, (b: Brokers) => string> = {
  mqtt: (b) => `mqtt://127.0.0.1:${b.plain.port}`,
  tcp: (b) => `tcp://127.0.0.1:${b.plain.port}`,
  ws: (b) => `ws://127.0.0.1:${b.plain.wsPort}/mqtt`,
  mqtts: (b) => `mqtts://127.0.0.1:${b.secure.port}`,
  tls: (b) => `tls://127.0.0.1:${b.secure.port}`,
  wss: (b) => `wss://127.0.0.1:${b.secure.wsPort}/mqtt`,
};

const TLS: ReadonlySet<MqttScheme> = new Set(["mqtts", "tls", "wss"]);

Deno.test({
  name: "MqttPublisher() delivers through every broker URL scheme: mqtt, tcp, ws, mqtts, tls, wss",
  ignore: !HAS_MOSQUITTO || !HAS_MOSQUITTO_WEBSOCKETS || !HAS_OPENSSL,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-schemes-" });
    try {
      const certs: TestCertificates = await makeTestCertificates(dir);
      const serverTls = {
        cafile: certs.ca,
        certfile: certs.serverCert,
        keyfile: certs.serverKey,
        requireCertificate: true,
      };
      await using plain = await Mosquitto.start({ websockets: {} });
      await using secure = await Mosquitto.start({
        tls: serverTls,
        websockets: { tls: serverTls },
      });
      assertEquals(plain.wsUrl, `ws://127.0.0.1:${plain.wsPort}`);
      assertEquals(secure.wsUrl, `wss://127.0.0.1:${secure.wsPort}`);
      const clientFiles = {
        ca: Deno.readTextFileSync(certs.ca),
        cert: Deno.readTextFileSync(certs.clientCert),
        key: Deno.readTextFileSync(certs.clientKey),
      };
      await using plainSub = await TestSubscriber.connect(plain.url, { topics: ["+/cam-1/score"] });
      await using secureSub = await TestSubscriber.connect(secure.url, {
        topics: ["+/cam-1/score"],
        client: clientFiles,
      });
      const brokers = { plain, secure };
      const delivered: string[] = [];
      let seq = 0;
      for (
        const [scheme, urlOf] of Object.entries(URLS) as [MqttScheme, (b: Brokers) => string][]
      ) {
        const url = urlOf(brokers);
        const { lines, logger } = captureLog();
        await using pub = testPublisher(url, {
          prefix: scheme,
          logger,
          ...(TLS.has(scheme)
            ? {
              tls: {
                ca: certs.ca,
                cert: certs.clientCert,
                key: certs.clientKey,
                rejectUnauthorized: DEFAULT_REJECT_UNAUTHORIZED,
              },
            }
            : {}),
        });
        assertEquals(pub.url, url);
        using limit = deadline(5000);
        await pub.waitConnected(limit).catch((e) => {
          throw new Error(`Cannot connect over ${url}: ${e}\n${lines.join("\n")}`);
        });
        pub.publishFrame(syntheticScoredFrame({ seq: ++seq }));
        const sub = TLS.has(scheme) ? secureSub : plainSub;
        const [score] = await sub.waitFor((m) => m.topic === `${scheme}/cam-1/score`);
        assertEquals(payloadJson<ScoreMessage>(score!).seq, seq);
        delivered.push(scheme);
      }
      assertEquals(delivered.sort(), [...MQTT_SCHEMES].sort());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
