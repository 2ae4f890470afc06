/** The embedded broker (aedes under Deno's node:net) with the real publisher and a subscriber. */
import { createLogger } from "../core/log.ts";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { EmbeddedBroker } from "./broker.ts";
import { decodeMapPng } from "./map_png.ts";
import type { ScoreMessage } from "./payloads.ts";
import { MqttPublisher } from "./publisher.ts";
import { deadline, publisherOptions, syntheticScoredFrame } from "./_test_utils.ts";
import { TestSubscriber } from "../../tests/support/mqtt_subscriber.ts";

function capture() {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", sink: (l) => lines.push(l) }) };
}

Deno.test("EmbeddedBroker() carries the publisher's messages to a subscriber", async () => {
  const log = capture();
  await using broker = await EmbeddedBroker.start({
    host: "127.0.0.1",
    port: 0,
    logger: log.logger,
  });
  assertOk(broker.port > 0);
  assertEquals(broker.url, `mqtt://127.0.0.1:${broker.port}`);
  assertOk(
    log.lines.some((l) =>
      l.includes("started the embedded MQTT broker") && l.includes(`url=${broker.url}`)
    ),
    log.lines.join("\n"),
  );
  await using sub = await TestSubscriber.connect(broker.url, {
    topics: ["efficientad/#"],
    client: { protocolVersion: broker.protocolVersion },
  });
  const pubLog = capture();
  await using pub = new MqttPublisher(publisherOptions(broker.url, {
    logger: pubLog.logger,
    map: { width: 8, height: 8 },
    events: { minDurationMs: 0 },
    reconnectMinMs: 20,
  }));
  using limit = deadline(5000);
  await pub.waitConnected(limit);
  assertEquals(pub.protocolVersion, 4); // aedes speaks 3.1.1: the publisher fell back
  assertOk(pubLog.lines.some((l) => l.includes("using MQTT 3.1.1")));
  assertEquals(broker.clients, 2);

  pub.publishFrame(syntheticScoredFrame({ seq: 1, normalizedScore: 0.9, anomalous: true }));
  const [score] = await sub.waitFor((m) => m.topic === "efficientad/cam-1/score");
  assertEquals((JSON.parse(score!.text) as ScoreMessage).seq, 1);
  const [map] = await sub.waitFor((m) => m.topic === "efficientad/cam-1/map");
  const decoded = decodeMapPng(map!.payload);
  assertEquals([decoded.header.width, decoded.header.height, decoded.header.seq], [8, 8, 1]);
  const [event] = await sub.waitFor((m) => m.topic === "efficientad/cam-1/event");
  assertEquals(JSON.parse(event!.text).type, "start");

  await using late = await TestSubscriber.connect(broker.url, {
    topics: ["efficientad/available"],
    client: { protocolVersion: 4 },
  });
  const [available] = await late.waitFor(() => true);
  assertEquals([available!.text, available!.retain], ["online", true]);
});

Deno.test("EmbeddedBroker.start() says plainly when the port is taken", async () => {
  await using first = await EmbeddedBroker.start({
    host: "127.0.0.1",
    port: 0,
    logger: capture().logger,
  });
  await assertRejects(
    () => EmbeddedBroker.start({ host: "127.0.0.1", port: first.port, logger: capture().logger }),
    Error,
    `Cannot start embedded MQTT broker on 127.0.0.1:${first.port}: the address is in use`,
  );
});

Deno.test("EmbeddedBroker() closes when its signal aborts", async () => {
  const controller = new AbortController();
  const broker = await EmbeddedBroker.start({
    host: "127.0.0.1",
    port: 0,
    logger: capture().logger,
    signal: controller.signal,
  });
  controller.abort();
  await broker.close(); // the same closing, already under way
  await assertRejects(
    () => TestSubscriber.connect(broker.url, { topics: ["x"], client: { protocolVersion: 4 } }),
    Error,
  );
});
