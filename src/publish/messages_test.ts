import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import type { CameraStatus } from "../core/frame.ts";
import { EventTracker } from "./events.ts";
import { decodeMapPng } from "./map_png.ts";
import { MessageBuilder } from "./messages.ts";
import type { EventMessage, ScoreMessage, StatusMessage } from "./payloads.ts";
import { topics } from "./topics.ts";
import { DEFAULT_EVENT_RULES, syntheticScoredFrame } from "./_test_utils.ts";

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
const JSON_PROPS = { contentType: "application/json", payloadFormatIndicator: true };

function builder(qos: 0 | 1 | 2 = 0, mapSize?: [number, number]) {
  return new MessageBuilder({
    topics: topics("p"),
    qos,
    retainStatus: false,
    ...(mapSize !== undefined ? { mapSize } : {}),
  });
}

Deno.test("MessageBuilder.score() and map() use the configured QoS, not retained", () => {
  const build = builder(0, [8, 12]);
  const scored = syntheticScoredFrame({ seq: 3, capturedAt: T0 });
  const score = build.score(scored, T0 + 50);
  assertEquals([score.topic, score.qos, score.retain], ["p/cam-1/score", 0, false]);
  assertEquals(score.properties, JSON_PROPS);
  const body = JSON.parse(score.payload as string) as ScoreMessage;
  assertEquals([body.seq, body.latency_ms], [3, 50]);
  const map = build.map(scored);
  assertEquals([map.topic, map.qos, map.retain], ["p/cam-1/map", 0, false]);
  assertOk(map.payload instanceof Uint8Array);
  const { header } = decodeMapPng(map.payload);
  assertEquals([header.seq, header.height, header.width], [3, 8, 12]);
  assertEquals(map.properties?.contentType, "image/png");
  assertEquals(map.properties?.userProperties?.seq, "3");
  assertThrows(() => build.score(syntheticScoredFrame({ camera: "a/b" }), T0), RangeError);
});

Deno.test("MessageBuilder.event(), status() and available() use max(qos, 1)", () => {
  for (const [qos, reliable] of [[0, 1], [1, 1], [2, 2]] as const) {
    const build = builder(qos);
    assertEquals(build.reliableQos, reliable);
    const tracker = new EventTracker({ ...DEFAULT_EVENT_RULES, minDurationMs: 0 });
    const event = tracker.observe({ camera: "cam-1", seq: 1, at: T0, score: 2, anomalous: true });
    assertOk(event !== undefined);
    const e = build.event(event, {
      onThreshold: 0.5,
      offThreshold: 0.4,
      threshold: 1.5,
      modelVersion: "m@1",
    });
    assertEquals([e.topic, e.qos, e.retain], ["p/cam-1/event", reliable, false]);
    assertEquals((JSON.parse(e.payload as string) as EventMessage).type, "start");
    const status: CameraStatus = {
      camera: "cam-1",
      state: "online",
      framesIn: 1,
      framesDropped: 0,
      reconnects: 0,
      stalls: 0,
    };
    const s = build.status(status, T0);
    assertEquals([s.topic, s.qos, s.retain], ["p/cam-1/status", reliable, false]);
    assertEquals((JSON.parse(s.payload as string) as StatusMessage).state, "online");
    assertEquals(build.available("offline"), {
      topic: "p/available",
      payload: "offline",
      qos: reliable,
      retain: true,
    });
  }
});
