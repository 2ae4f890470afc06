/** The connection alone (no frames, no topics of the service) against a real mosquitto. */
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { freePort, HAS_MOSQUITTO, Mosquitto } from "../../tests/support/mosquitto.ts";
import { TcpProxy } from "../../tests/support/tcp_proxy.ts";
import { EmbeddedBroker } from "./broker.ts";
import { type IncomingMessage, MqttConnection, type MqttConnectionOptions } from "./connection.ts";
import type { OutgoingMessage } from "./queue.ts";
import { captureLog, deadline, DEFAULT_QUEUE_LIMIT } from "./_test_utils.ts";
import { TestSubscriber } from "../../tests/support/mqtt_subscriber.ts";

function connection(url: string, options: Partial<MqttConnectionOptions> = {}): MqttConnection {
  return new MqttConnection({
    url,
    clientId: `conn-test-${crypto.randomUUID().slice(0, 8)}`,
    queueLimit: DEFAULT_QUEUE_LIMIT,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    connectTimeoutMs: 2000,
    logger: captureLog().logger,
    ...options,
  });
}

function message(topic: string, payload: string, qos: 0 | 1 | 2 = 1): OutgoingMessage {
  return { topic, payload, qos, retain: false };
}

Deno.test({
  name: "MqttConnection() sends its birth first, then the queue in order, and counts",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["t/#"] });
    const conn = connection(broker.url, {
      birth: { topic: "t/available", payload: "online", qos: 1, retain: true },
    });
    for (let i = 0; i < 5; i++) conn.publish(message("t/n", String(i), i % 2 === 0 ? 0 : 1));
    using limit = deadline(5000);
    await conn.waitConnected(limit);
    assertEquals([conn.connected, conn.protocolVersion], [true, 5]);
    await conn.flush(limit);
    const got = await sub.waitFor(() => true, { count: 6 });
    assertEquals(got.map((m) => m.text), ["online", "0", "1", "2", "3", "4"]);
    await conn.close();
    assertEquals(conn.counters, {
      connected: false,
      queued: 0,
      published: 6,
      dropped: 0,
      reconnects: 0,
    });
    conn.publish(message("t/n", "late"));
    assertEquals(conn.counters.dropped, 1); // once closed, a message is dropped and counted
    await assertRejects(() => conn.waitConnected(), Error, "the MQTT connection is closed");
  },
});

Deno.test({
  name: "MqttConnection() delivers what was published across a cut, reconnects and leaves its will",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using proxy = new TcpProxy(broker.port);
    await using sub = await TestSubscriber.connect(broker.url, { topics: ["t/#"] });
    const { lines, logger } = captureLog();
    await using conn = connection(`mqtt://127.0.0.1:${proxy.port}`, {
      logger,
      will: { topic: "t/available", payload: "offline", qos: 1, retain: true },
      birth: { topic: "t/available", payload: "online", qos: 1, retain: true },
    });
    using limit = deadline(10_000);
    await conn.waitConnected(limit);
    await sub.waitFor((m) => m.topic === "t/available"); // the birth arrived
    proxy.cut(); // no DISCONNECT reaches the broker: it publishes the will
    for (let i = 0; i < 20; i++) conn.publish(message("t/n", String(i)));
    await sub.waitFor((m) => m.topic === "t/available", { count: 3 });
    assertEquals(sub.on("t/available").map((m) => m.text), ["online", "offline", "online"]);
    await conn.flush(limit);
    const numbers = new Set(
      (await sub.waitFor((m) => m.topic === "t/n", { count: 20 })).map((m) => m.text),
    );
    assertEquals(numbers.size, 20); // at least once: all twenty arrive
    assertEquals([conn.counters.reconnects, conn.counters.dropped], [1, 0]);
    assertOk(lines.some((l) => l.includes("lost the MQTT broker connection")));
    assertOk(lines.some((l) => l.includes("reconnected to MQTT broker")));
  },
});

Deno.test({
  name: "MqttConnection() subscribes again after a broker restart and routes by filter",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using conn = connection(broker.url);
    await using sender = connection(broker.url);
    const a: IncomingMessage[] = [];
    const b: IncomingMessage[] = [];
    conn.subscribe({ filter: "in/+/a", qos: 1, name: "a", onMessage: (m) => a.push(m) });
    conn.subscribe({
      filter: "in/#",
      qos: 1,
      name: "b",
      onMessage: (m) => {
        b.push(m);
        throw new Error("handler failure is logged, not fatal");
      },
    });
    using limit = deadline(10_000);
    await conn.waitConnected(limit);
    // Subscriptions settle asynchronously: send until one arrives.
    const sendUntil = async (topic: string, done: () => boolean) => {
      while (!done()) {
        sender.publish(message(topic, "x"));
        await new Promise((r) => setTimeout(r, 50));
        if (limit.signal.aborted) throw new Error(`Cannot receive ${topic} in time`);
      }
    };
    await sendUntil("in/1/a", () => a.length > 0);
    await sendUntil("in/1/z", () => b.some((m) => m.topic === "in/1/z"));
    assertOk(a.every((m) => m.topic === "in/1/a" && !m.retained));
    assertEquals(new TextDecoder().decode(a[0]!.payload), "x");
    const before = a.length;
    await broker.restart();
    await sendUntil("in/2/a", () => a.some((m) => m.topic === "in/2/a"));
    assertOk(a.length > before);
    assertOk(conn.counters.reconnects >= 1);
  },
});

Deno.test("MqttConnection() falls back to MQTT 3.1.1 when the broker refuses 5", async () => {
  await using broker = await EmbeddedBroker.start({
    host: "127.0.0.1",
    port: 0,
    logger: captureLog().logger,
  });
  const { lines, logger } = captureLog();
  await using conn = connection(broker.url, { logger });
  using limit = deadline(5000);
  await conn.waitConnected(limit);
  assertEquals(conn.protocolVersion, 4);
  assertOk(lines.some((l) => l.includes("refuses protocol 5")));
});

Deno.test("MqttConnection() with an aborted signal never connects; an abort closes it", async () => {
  const aborted = connection(`mqtt://127.0.0.1:${freePort()}`, { signal: AbortSignal.abort() });
  await assertRejects(() => aborted.waitConnected(), Error, "the MQTT connection is closed");
  await aborted.close();
  const controller = new AbortController();
  const { lines, logger } = captureLog();
  const conn = connection(`mqtt://edge:hunter22@127.0.0.1:${freePort()}`, {
    signal: controller.signal,
    logger,
    queueLimit: 3,
  });
  for (let i = 0; i < 5; i++) conn.publish(message("t", String(i), 0));
  assertEquals([conn.counters.queued, conn.counters.dropped], [3, 2]);
  assertEquals(conn.url, `mqtt://***:***@127.0.0.1:${new URL(conn.url).port}`);
  const waiting = conn.waitConnected();
  controller.abort();
  await assertRejects(() => waiting, Error, "Cannot connect: the MQTT connection is closed");
  await conn.close();
  assertEquals(conn.counters.dropped, 5);
  assertOk(lines.every((l) => !l.includes("hunter22")), lines.join("\n"));
});
