/**
 * Test helpers for MQTT output: a subscriber that collects messages and waits for the ones
 * a test expects, and synthetic scored frames. Used by this folder's tests and by the
 * pipeline's integration tests; never by the service.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { ScoredFrame } from "../core/frame.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { MqttPublisher, type MqttPublisherOptions } from "./publisher.ts";

/** One message a {@linkcode TestSubscriber} received. */
export interface ReceivedMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  /** The retain flag as delivered (true for a retained message sent on subscribe). */
  readonly retain: boolean;
  readonly qos: number;
  /** MQTT 5 properties, when the subscriber speaks 5. */
  readonly properties: IPublishPacket["properties"];
  /** The payload as UTF-8 text. */
  readonly text: string;
}

/** Options of {@linkcode TestSubscriber.connect}. */
export interface TestSubscriberOptions {
  /** Topic filters to subscribe to. */
  readonly topics: readonly string[];
  /** Subscription QoS. Default 1. */
  readonly qos?: 0 | 1 | 2;
  /** Extra mqtt.js options (client id, clean, protocol version, TLS, credentials). */
  readonly client?: IClientOptions;
}

/**
 * An mqtt.js subscriber that keeps every message it receives, in order.
 *
 * @example
 * ```ts
 * async function firstScore(url: string) {
 *   await using sub = await TestSubscriber.connect(url, { topics: ["efficientad/#"] });
 *   const [score] = await sub.waitFor((m) => m.topic.endsWith("/score"));
 *   return score;
 * }
 * ```
 */
export class TestSubscriber implements AsyncDisposable {
  /** Everything received so far. */
  readonly messages: ReceivedMessage[] = [];
  readonly #client: MqttClient;
  #wake: Array<() => void> = [];

  private constructor(client: MqttClient) {
    this.#client = client;
    client.on("message", (topic: string, payload: Buffer, packet: IPublishPacket) => {
      const bytes = new Uint8Array(payload);
      this.messages.push({
        topic,
        payload: bytes,
        retain: packet.retain,
        qos: packet.qos,
        properties: packet.properties,
        text: new TextDecoder().decode(bytes),
      });
      const wake = this.#wake;
      this.#wake = [];
      for (const w of wake) w();
    });
  }

  /**
   * Connects (MQTT 5 unless `client.protocolVersion` says otherwise; no automatic
   * reconnect) and subscribes.
   *
   * @throws {Error} when the broker cannot be reached or refuses the connection.
   */
  static async connect(url: string, options: TestSubscriberOptions): Promise<TestSubscriber> {
    // Listen before the CONNACK: a resumed session's messages follow it at once.
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options.client,
    });
    const subscriber = new TestSubscriber(client);
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => {
          client.off("error", reject);
          resolve();
        });
        client.once("error", reject);
      });
      await client.subscribeAsync([...options.topics], { qos: options.qos ?? 1 });
    } catch (e) {
      await subscriber.close();
      throw e;
    }
    return subscriber;
  }

  /** Messages on one topic, in order. */
  on(topic: string): ReceivedMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /**
   * Waits until `count` received messages (counting from index `from`) match `predicate`;
   * returns them.
   *
   * @throws {Error} after `timeoutMs` (default 5000), listing what did arrive.
   */
  async waitFor(
    predicate: (m: ReceivedMessage) => boolean,
    options: { count?: number; timeoutMs?: number; from?: number } = {},
  ): Promise<ReceivedMessage[]> {
    const count = options.count ?? 1;
    const from = options.from ?? 0;
    const matches = () => this.messages.slice(from).filter(predicate);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, options.timeoutMs ?? 5000);
    });
    try {
      while (matches().length < count) {
        if (timedOut) {
          const seen = this.messages.slice(from).map((m) =>
            `${m.topic} ${
              m.payload.some((b) => b < 9) ? `<${m.payload.length} bytes>` : m.text.slice(0, 80)
            }`
          );
          throw new Error(
            `Cannot wait for ${count} MQTT messages: ${matches().length} arrived in time; got:\n${
              seen.slice(-20).join("\n")
            }`,
          );
        }
        await Promise.race([new Promise<void>((r) => this.#wake.push(r)), timeout]);
      }
      return matches().slice(0, count);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Disconnects cleanly (forcibly when not connected). */
  async close(): Promise<void> {
    await this.#client.endAsync(!this.#client.connected);
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Options of {@linkcode syntheticScoredFrame}. */
export interface SyntheticScoredOptions {
  readonly camera?: string;
  readonly seq?: number;
  readonly capturedAt?: number;
  readonly score?: number;
  readonly normalizedScore?: number;
  readonly threshold?: number;
  readonly anomalous?: boolean;
  /** Default: a 16 x 16 ramp from 0 to `score`. */
  readonly map?: Tensor;
  readonly modelVersion?: string;
  readonly batchSize?: number;
  readonly inferenceMs?: number;
}

/** A scored frame for tests, with a tiny RGB frame and a smooth map. */
export function syntheticScoredFrame(options: SyntheticScoredOptions = {}): ScoredFrame {
  const score = options.score ?? 0.2;
  const h = 16;
  const w = 16;
  const map = options.map ?? tensor(
    [1, h, w],
    Float32Array.from({ length: h * w }, (_, i) => score * ((i % w) + Math.floor(i / w)) / 30),
  );
  const capturedAt = options.capturedAt ?? Date.now();
  return {
    frame: {
      camera: options.camera ?? "cam-1",
      seq: options.seq ?? 0,
      capturedAt,
      width: 4,
      height: 4,
      rgb: new Uint8Array(4 * 4 * 3),
    },
    score,
    ...(options.normalizedScore !== undefined ? { normalizedScore: options.normalizedScore } : {}),
    ...(options.threshold !== undefined ? { threshold: options.threshold } : {}),
    anomalous: options.anomalous ?? (options.normalizedScore ?? 0) >= 0.5,
    map,
    modelVersion: options.modelVersion ?? "test-model@1",
    batchSize: options.batchSize ?? 1,
    inferenceMs: options.inferenceMs ?? 5,
    scoredAt: capturedAt + 10,
  };
}

/** An abort signal that fires after `ms`, whose timer is cleared on dispose. */
export function deadline(ms: number): { readonly signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`timed out after ${ms} ms`, "TimeoutError")),
    ms,
  );
  return { signal: controller.signal, [Symbol.dispose]: () => clearTimeout(timer) };
}

/** A logger that keeps its lines (debug and up), for assertions on what was logged. */
export function captureLog(): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", sink: (l) => lines.push(l) }) };
}

/** A publisher with test-friendly timings (fast reconnects, no periodic messages). */
export function testPublisher(
  url: string,
  options: Partial<MqttPublisherOptions> = {},
): MqttPublisher {
  return new MqttPublisher({
    url,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    connectTimeoutMs: 2000,
    statsIntervalMs: 0,
    statusIntervalMs: 0,
    logger: captureLog().logger,
    ...options,
  });
}

/** A received message's JSON payload. */
export function payloadJson<T>(m: ReceivedMessage): T {
  return JSON.parse(m.text) as T;
}
