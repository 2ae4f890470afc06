/** The test subscriber against the embedded broker (no mosquitto needed). */
import mqtt from "mqtt";
import { EmbeddedBroker } from "../../src/publish/broker.ts";
import { createLogger } from "../../src/core/log.ts";
import { assertEquals, assertRejects } from "../assert.ts";
import { payloadJson, persistentSession, TestSubscriber } from "./mqtt_subscriber.ts";

const quiet = createLogger({ level: "error", sink: () => {} });

/** An embedded broker, a subscriber to `t/#` and a publishing client, all closed after `fn`. */
async function withBroker(
  fn: (sub: TestSubscriber, client: mqtt.MqttClient) => Promise<void>,
): Promise<void> {
  await using broker = await EmbeddedBroker.start({ host: "127.0.0.1", port: 0, logger: quiet });
  await using sub = await TestSubscriber.connect(broker.url, {
    topics: ["t/#"],
    client: { protocolVersion: broker.protocolVersion },
  });
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  try {
    await fn(sub, client);
  } finally {
    await client.endAsync();
  }
}

Deno.test("TestSubscriber keeps what arrives and waits for the messages asked for", async () => {
  await withBroker(async (sub, client) => {
    await client.publishAsync("t/a", JSON.stringify({ n: 1 }), { qos: 1 });
    await client.publishAsync("t/b", "two", { qos: 1 });
    const [b] = await sub.waitFor((m) => m.topic === "t/b");
    assertEquals(b!.text, "two");
    assertEquals(payloadJson<{ n: number }>(sub.on("t/a")[0]!), { n: 1 });
    assertEquals(sub.messages.map((m) => m.topic), ["t/a", "t/b"]);
    await assertRejects(
      () => sub.waitFor((m) => m.topic === "t/c", { timeoutMs: 50 }),
      Error,
      "Cannot wait for 1 MQTT messages: 0 arrived in time",
    );
  });
});

Deno.test("persistentSession() asks for a QoS 1 session that the broker keeps", () => {
  assertEquals(persistentSession("archive", ["t/#"]), {
    topics: ["t/#"],
    qos: 1,
    client: { clientId: "archive", clean: false, protocolVersion: 4 },
  });
});

Deno.test("TestSubscriber.waitFor() with progress waits as long as progress keeps arriving", async () => {
  await withBroker(async (sub, client) => {
    // Progress every 60 ms for 600 ms, then the awaited message: far beyond the 200 ms limit
    // in all, never 200 ms without progress.
    const feeding = (async () => {
      for (let i = 0; i < 10; i++) {
        await client.publishAsync("t/step", String(i), { qos: 1 });
        await new Promise((r) => setTimeout(r, 60));
      }
      await client.publishAsync("t/done", "yes", { qos: 1 });
    })();
    const [done] = await sub.waitFor((m) => m.topic === "t/done", {
      timeoutMs: 200,
      progress: (m) => m.topic === "t/step",
    });
    assertEquals(done!.text, "yes");
    await feeding;
    // No progress: the limit holds.
    await assertRejects(
      () =>
        sub.waitFor((m) => m.topic === "t/never", {
          timeoutMs: 100,
          progress: (m) => m.topic === "t/step",
        }),
      Error,
      "(100 ms without progress)",
    );
  });
});
