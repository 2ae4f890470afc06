/**
 * Domain data to outgoing MQTT messages: for each topic of `docs/mqtt.md`, its topic, its
 * payload (`payloads.ts`, `map_png.ts`), QoS, retain flag and MQTT 5 properties. Building
 * a message is pure; what to send and when (cadence, events, timers) is the publisher's
 * (`publisher.ts`), and sending is the connection's (`connection.ts`). A new topic gets a
 * method here and a `publish…` method on the publisher.
 *
 * QoS: `score`, `map` and `stats` use the configured QoS; `event`, `status`, `model` and
 * `available` use `max(qos, 1)`.
 *
 * @module
 */
import type { CameraStatus, ScoredFrame } from "../core/frame.ts";
import type { AnomalyEvent } from "./events.ts";
import { encodeMapPng, MAP_ENCODING } from "./map_png.ts";
import {
  type EventContext,
  eventMessage,
  modelMessage,
  type ModelState,
  type ModelUpdate,
  scoreMessage,
  type StatsMessage,
  statusMessage,
} from "./payloads.ts";
import type { OutgoingMessage, OutgoingProperties } from "./queue.ts";
import type { Topics } from "./topics.ts";

/** Options of {@linkcode MessageBuilder}. */
export interface MessageBuilderOptions {
  readonly topics: Topics;
  /** QoS of `score`, `map` and `stats`. */
  readonly qos: 0 | 1 | 2;
  /** Retain `status` messages. */
  readonly retainStatus: boolean;
  /** The `map` PNG's size, [height, width]; default the map's own. */
  readonly mapSize?: readonly [number, number];
}

/** Lifecycle steps that a newer `model` message never replaces in the outgoing queue. */
const KEPT_MODEL_STATES: ReadonlySet<ModelState> = new Set([
  "validating",
  "promoted",
  "refused",
  "rolled_back",
  "failed",
]);

const JSON_PROPERTIES: OutgoingProperties = {
  contentType: "application/json",
  payloadFormatIndicator: true,
};

/**
 * Builds the service's outgoing messages.
 *
 * @example
 * ```ts
 * import type { ScoredFrame } from "../core/frame.ts";
 * import type { MqttConnection } from "./connection.ts";
 * import { topics } from "./topics.ts";
 *
 * const build = new MessageBuilder({ topics: topics("efficientad"), qos: 1, retainStatus: true });
 * function send(connection: MqttConnection, scored: ScoredFrame) {
 *   connection.publish(build.score(scored, Date.now()));
 * }
 * ```
 */
export class MessageBuilder {
  /** The topic tree. */
  readonly topics: Topics;
  readonly #qos: 0 | 1 | 2;
  readonly #reliableQos: 1 | 2;
  readonly #retainStatus: boolean;
  readonly #mapSize: readonly [number, number] | undefined;

  constructor(options: MessageBuilderOptions) {
    this.topics = options.topics;
    this.#qos = options.qos;
    this.#reliableQos = options.qos === 2 ? 2 : 1;
    this.#retainStatus = options.retainStatus;
    this.#mapSize = options.mapSize;
  }

  /** QoS of the messages that must arrive (`max(qos, 1)`). */
  get reliableQos(): 1 | 2 {
    return this.#reliableQos;
  }

  /**
   * `<prefix>/available`, retained: `online`, or `offline` (also the last will).
   */
  available(state: "online" | "offline"): OutgoingMessage {
    return { topic: this.topics.available, payload: state, qos: this.#reliableQos, retain: true };
  }

  /**
   * `<prefix>/<camera>/score` of a scored frame.
   *
   * @throws {RangeError} when the camera name is not topic-safe.
   */
  score(scored: ScoredFrame, now: number): OutgoingMessage {
    return {
      topic: this.topics.score(scored.frame.camera),
      payload: JSON.stringify(scoreMessage(scored, now)),
      qos: this.#qos,
      retain: false,
      properties: JSON_PROPERTIES,
    };
  }

  /**
   * `<prefix>/<camera>/map`: the frame's anomaly map as a PNG, its header in user properties.
   *
   * @throws {RangeError} when the map cannot be encoded ("Cannot encode anomaly map ...").
   */
  map(scored: ScoredFrame): OutgoingMessage {
    const { frame } = scored;
    const { png, header } = encodeMapPng(scored.map, {
      camera: frame.camera,
      seq: frame.seq,
      capturedAt: frame.capturedAt,
      ...(this.#mapSize !== undefined ? { size: this.#mapSize } : {}),
    });
    return {
      topic: this.topics.map(frame.camera),
      payload: png,
      qos: this.#qos,
      retain: false,
      properties: {
        contentType: "image/png",
        userProperties: {
          v: "1",
          encoding: MAP_ENCODING,
          camera: header.camera,
          seq: String(header.seq),
          captured_at_ms: String(header.captured_at_ms),
          min: String(header.min),
          max: String(header.max),
          width: String(header.width),
          height: String(header.height),
        },
      },
    };
  }

  /** `<prefix>/<camera>/event` of an anomaly event. */
  event(event: AnomalyEvent, context: EventContext): OutgoingMessage {
    return {
      topic: this.topics.event(event.camera),
      payload: JSON.stringify(eventMessage(event, context)),
      qos: this.#reliableQos,
      retain: false,
      properties: JSON_PROPERTIES,
    };
  }

  /** `<prefix>/<camera>/status` of a camera, retained unless `retainStatus` is off. */
  status(status: CameraStatus, now: number): OutgoingMessage {
    return {
      topic: this.topics.status(status.camera),
      payload: JSON.stringify(statusMessage(status, now)),
      qos: this.#reliableQos,
      retain: this.#retainStatus,
      properties: JSON_PROPERTIES,
    };
  }

  /**
   * `<prefix>/<camera>/model`, retained; a progress step (`idle`, `collecting`,
   * `training`) may be replaced in the queue by a newer one, the other steps may not.
   *
   * @throws {RangeError} when the camera name is not topic-safe.
   */
  model(camera: string, update: ModelUpdate, now: number): OutgoingMessage {
    return {
      topic: this.topics.model(camera),
      payload: JSON.stringify(modelMessage(camera, update, now)),
      qos: this.#reliableQos,
      retain: true,
      properties: JSON_PROPERTIES,
      replaceable: !KEPT_MODEL_STATES.has(update.state),
    };
  }

  /** `<prefix>/stats`. */
  stats(message: StatsMessage): OutgoingMessage {
    return {
      topic: this.topics.stats,
      payload: JSON.stringify(message),
      qos: this.#qos,
      retain: false,
      properties: JSON_PROPERTIES,
    };
  }
}
