/**
 * The `<prefix>/<camera>/model` topic and the commands in (`<prefix>/<camera>/set/*`),
 * against a real mosquitto and real mqtt.js clients.
 */
import mqtt, { type MqttClient } from "mqtt";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../../tests/support/mosquitto.ts";
import type { Command } from "./commands.ts";
import type { ModelMessage, ModelUpdate } from "./payloads.ts";
import { captureLog, deadline, testPublisher } from "./_test_utils.ts";
import {
  payloadJson,
  persistentSession,
  TestSubscriber,
} from "../../tests/support/mqtt_subscriber.ts";

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

const MODEL_KEYS = [
  "camera",
  "candidate_version",
  "collecting",
  "decision_reason",
  "model_version",
  "state",
  "store_error",
  "time",
  "time_ms",
  "training",
  "trigger",
  "trigger_reason",
  "v",
  "validation",
];

const capture = captureLog;
const publisher = testPublisher;
const json = payloadJson;

/** An mqtt.js client that sends commands, as an operator's tool would. */
async function operator(url: string): Promise<MqttClient & AsyncDisposable> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  return Object.assign(client, {
    [Symbol.asyncDispose]: async () => void await client.endAsync(),
  });
}

/** Publishes a command every 100 ms until `done()` (subscriptions settle asynchronously). */
async function sendUntil(
  client: MqttClient,
  topic: string,
  payload: string,
  done: () => boolean,
  signal: AbortSignal,
): Promise<void> {
  while (!done()) {
    signal.throwIfAborted();
    await client.publishAsync(topic, payload, { qos: 1 });
    await new Promise((r) => setTimeout(r, 100));
  }
}

const LIFECYCLE: ModelUpdate[] = [
  { state: "collecting", key: "cam", at: T0, trigger: "bootstrap", collected: 120, needed: 500 },
  {
    state: "training",
    key: "cam",
    at: T0,
    trigger: "bootstrap",
    progress: { step: 400, total: 2000, loss: 0.01234567, etaMs: 95_040 },
  },
  {
    state: "promoted",
    key: "cam",
    at: T0,
    serving: "efficientad-s@1",
    trigger: "bootstrap",
    validation: {
      candidate: {
        normalFrames: 50,
        anomalousFrames: 0,
        flaggedFraction: 0.02,
        medianNormalized: 0.21,
      },
    },
    decisionReason: "bootstrap: no current model",
  },
];

Deno.test({
  name: "MqttPublisher.publishModel() publishes retained model messages with the documented schema",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    await using live = await TestSubscriber.connect(broker.url, {
      topics: ["efficientad/+/model"],
    });
    await using pub = publisher(broker.url, { now: () => T0 });
    using limit = deadline(5000);
    await pub.waitConnected(limit);
    for (const update of LIFECYCLE) pub.publishModel("cam", update);
    await pub.flush(limit);

    const steps = await live.waitFor((m) => m.topic === "efficientad/cam/model", { count: 3 });
    assertOk(steps.every((m) => m.qos === 1));
    assertOk(steps.every((m) => m.properties?.contentType === "application/json"));
    const [collecting, training, promoted] = steps.map((m) => json<ModelMessage>(m));
    assertEquals(Object.keys(collecting!).sort(), MODEL_KEYS);
    assertEquals(collecting, {
      v: 1,
      time: new Date(T0).toISOString(),
      time_ms: T0,
      camera: "cam",
      state: "collecting",
      model_version: null,
      candidate_version: null,
      trigger: "bootstrap",
      trigger_reason: null,
      collecting: { frames: 120, needed: 500, bootstrap: true },
      training: null,
      validation: null,
      decision_reason: null,
      store_error: null,
    });
    assertEquals(training!.training, { step: 400, total: 2000, loss: 0.012346, eta_s: 95 });
    assertEquals(promoted!.validation, {
      normal_frames: 50,
      anomalous_frames: 0,
      candidate: {
        flagged_share: 0.02,
        median_normalized_score: 0.21,
        detected_share: null,
        auroc: null,
      },
      current: null,
    });

    // A consumer that comes later gets the latest step at once, retained.
    await using late = await TestSubscriber.connect(broker.url, {
      topics: ["efficientad/+/model"],
    });
    const [retained] = await late.waitFor((m) => m.topic === "efficientad/cam/model");
    assertEquals(retained!.retain, true);
    assertEquals(json<ModelMessage>(retained!).state, "promoted");
    assertEquals(json<ModelMessage>(retained!).model_version, "efficientad-s@1");
  },
});

Deno.test({
  name: "MqttPublisher.publishModel() queues while the broker is away, keeping every decision",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start({ persistence: true });
    const archive = persistentSession("model-archive", ["efficientad/+/model"]);
    await (await TestSubscriber.connect(broker.url, archive)).close();
    await using pub = publisher(broker.url);
    using limit = deadline(15_000);
    await pub.waitConnected(limit);
    await broker.stop();
    while (pub.connected) {
      limit.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 10));
    }
    const at = Date.now();
    const base = { key: "cam", at, serving: "m@1" };
    const run = { ...base, trigger: "drift" as const };
    pub.publishModel("cam", { ...run, state: "training", progress: { step: 1, total: 9 } });
    pub.publishModel("cam", { ...run, state: "training", progress: { step: 2, total: 9 } });
    const figures = {
      normalFrames: 9,
      anomalousFrames: 0,
      flaggedFraction: 1,
      medianNormalized: 1,
    };
    pub.publishModel("cam", {
      ...run,
      state: "refused",
      candidate: "m@2",
      decisionReason: "worse by 0.08",
      validation: { candidate: figures, current: figures },
    });
    pub.publishModel("cam", { ...base, state: "idle", cancelled: false });
    assertEquals(pub.counters.queued, 2);
    await broker.resume();
    await pub.flush(limit);
    assertEquals(pub.counters.dropped, 0);

    await using sub = await TestSubscriber.connect(broker.url, archive);
    // the queued steps (not retained on delivery), then the retained latest on subscribe
    const got = await sub.waitFor(() => true, { count: 3 });
    const states = got.map((m) => `${json<ModelMessage>(m).state}${m.retain ? " (retained)" : ""}`);
    assertEquals(states, ["refused", "idle", "idle (retained)"]);
  },
});

Deno.test({
  name: "MqttPublisher() hands parsed commands to onCommand and ignores malformed ones",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    const { lines, logger } = capture();
    const received: Command[] = [];
    await using pub = publisher(broker.url, { logger, onCommand: (c) => received.push(c) });
    using limit = deadline(10_000);
    await pub.waitConnected(limit);
    await using op = await operator(broker.url);

    await sendUntil(
      op,
      "efficientad/cam/set/mark",
      '{"label": "anomalous", "seq": 7}',
      () => received.length > 0,
      limit.signal,
    );
    assertEquals(received[0], { camera: "cam", command: "mark", label: "anomalous", seq: 7 });

    received.length = 0;
    await op.publishAsync("efficientad/cam/set/mark", '{"label": "broken"}', { qos: 1 });
    await op.publishAsync("efficientad/cam/set/reboot", "", { qos: 1 });
    await op.publishAsync("efficientad/cam/set/retrain", "new batch", { qos: 1 });
    await op.publishAsync("efficientad/cam/set/rollback", "", { qos: 1 });
    while (received.length < 2) {
      limit.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(received, [
      { camera: "cam", command: "retrain", reason: "new batch" },
      { camera: "cam", command: "rollback" },
    ]);
    assertEquals(pub.commandCounters.rejected, 2);
    const warnings = lines.filter((l) => l.includes("ignoring a malformed MQTT command"));
    assertEquals(warnings.length, 2);
    assertOk(warnings.some((l) => l.includes('\\"label\\" must be \\"normal\\"')));
    assertOk(warnings.some((l) => l.includes("unknown command")));
  },
});

Deno.test({
  name: "MqttPublisher() subscribes to commands again after a broker restart",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start({ persistence: false });
    const received: Command[] = [];
    await using pub = publisher(broker.url, { onCommand: (c) => received.push(c) });
    using limit = deadline(15_000);
    await pub.waitConnected(limit);
    {
      await using op = await operator(broker.url);
      await sendUntil(
        op,
        "efficientad/cam/set/cancel",
        "",
        () => received.length > 0,
        limit.signal,
      );
    }
    // A broker without persistence forgets every subscription when it restarts.
    await broker.restart();
    while (pub.counters.reconnects < 1) {
      limit.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 20));
    }
    await using op = await operator(broker.url);
    await sendUntil(
      op,
      "efficientad/cam-2/set/mark",
      '{"label":"normal"}',
      () => received.length > 1,
      limit.signal,
    );
    assertEquals(received.at(-1), { camera: "cam-2", command: "mark", label: "normal" });
  },
});

Deno.test({
  name: "MqttPublisher() ignores a retained command (MQTT 3.1.1) and logs it",
  ignore: !HAS_MOSQUITTO,
  async fn() {
    await using broker = await Mosquitto.start();
    {
      await using op = await operator(broker.url);
      await op.publishAsync("efficientad/cam/set/retrain", "stale", { qos: 1, retain: true });
    }
    const { lines, logger } = capture();
    const received: Command[] = [];
    await using pub = publisher(broker.url, {
      logger,
      protocolVersion: 4,
      onCommand: (c) => received.push(c),
    });
    using limit = deadline(5000);
    await pub.waitConnected(limit);
    while (pub.commandCounters.rejected < 1) {
      limit.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(received, []);
    assertOk(lines.some((l) => l.includes("ignoring a retained MQTT command")));
  },
});
