/**
 * An MQTT subscriber for tests and tools: it collects every message it receives and waits
 * for the ones a test expects. Used by `src/publish` tests, the integration tests and
 * `tools/bench_retrain.ts`; never by the service.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";

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
 * Options of a persistent QoS 1 session (MQTT 3.1.1, clean session off): connect and close
 * once to open it, and the broker keeps the session's QoS 1 messages until the next
 * connection with the same options.
 */
export function persistentSession(
  clientId: string,
  topics: readonly string[],
): TestSubscriberOptions {
  return { topics, qos: 1, client: { clientId, clean: false, protocolVersion: 4 } };
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
   * With `progress`, `timeoutMs` is the longest wait without progress: each new message
   * matching `progress` (a training step reported, frames still draining) starts it again,
   * so a slow machine that is still moving is waited for and a stuck one fails.
   *
   * @throws {Error} after `timeoutMs` (default 5000) without the messages (or without
   * progress), listing what did arrive.
   */
  async waitFor(
    predicate: (m: ReceivedMessage) => boolean,
    options: {
      count?: number;
      timeoutMs?: number;
      from?: number;
      progress?: (m: ReceivedMessage) => boolean;
    } = {},
  ): Promise<ReceivedMessage[]> {
    const count = options.count ?? 1;
    const from = options.from ?? 0;
    const timeoutMs = options.timeoutMs ?? 5000;
    const matches = () => this.messages.slice(from).filter(predicate);
    const progressed = () =>
      options.progress ? this.messages.slice(from).filter(options.progress).length : 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    let onTimeout = () => {};
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        onTimeout();
      }, timeoutMs);
    };
    const timeout = new Promise<void>((resolve) => (onTimeout = resolve));
    arm();
    let seenProgress = progressed();
    try {
      while (matches().length < count) {
        if (timedOut) {
          const seen = this.messages.slice(from).map((m) =>
            `${m.topic} ${
              m.payload.some((b) => b < 9) ? `<${m.payload.length} bytes>` : m.text.slice(0, 80)
            }`
          );
          const still = options.progress ? ` (${timeoutMs} ms without progress)` : "";
          throw new Error(
            `Cannot wait for ${count} MQTT messages: ${matches().length} arrived in time${still}; got:\n${
              seen.slice(-20).join("\n")
            }`,
          );
        }
        await Promise.race([new Promise<void>((r) => this.#wake.push(r)), timeout]);
        const now = progressed();
        if (now > seenProgress && !timedOut) {
          seenProgress = now;
          arm();
        }
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

/** A received message's JSON payload. */
export function payloadJson<T>(m: ReceivedMessage): T {
  return JSON.parse(m.text) as T;
}
