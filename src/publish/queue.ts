/**
 * The publisher's bounded outgoing queue.
 *
 * Backpressure policy: `push` never blocks and never fails. Beyond `limit` messages the
 * queue drops one message per push, the oldest QoS 0 message if there is one (scores,
 * maps and statistics go first), else the oldest message, and counts it. A retained
 * message replaces any queued retained message of the same topic (only the latest state
 * matters), which is not counted as a drop; a message marked `replaceable: false` (a
 * model lifecycle step such as `promoted`) is never replaced and replaces nothing.
 *
 * @module
 */

import { assertPositiveInteger } from "../core/check.ts";

/** MQTT 5 properties the publisher sets. */
export interface OutgoingProperties {
  readonly contentType?: string;
  readonly payloadFormatIndicator?: boolean;
  readonly userProperties?: Readonly<Record<string, string>>;
}

/** One message waiting to be published. */
export interface OutgoingMessage {
  readonly topic: string;
  readonly payload: string | Uint8Array;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  /** MQTT 5 properties; left out on MQTT 3.1.1 connections. */
  readonly properties?: OutgoingProperties;
  /**
   * For a retained message: whether a newer retained message of the same topic may
   * replace it while queued, and whether it replaces older ones. Default true.
   */
  readonly replaceable?: boolean;
}

/** A FIFO of outgoing messages with a length limit and a drop policy (see the module doc). */
export class OutgoingQueue {
  /** The most messages held. */
  readonly limit: number;
  #items: OutgoingMessage[] = [];
  #dropped = 0;

  /** @throws {RangeError} when `limit` is not a positive integer. */
  constructor(limit: number) {
    this.limit = assertPositiveInteger(limit, "limit", "Cannot make outgoing queue");
  }

  /** Messages waiting. */
  get length(): number {
    return this.#items.length;
  }

  /** Messages dropped so far because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Adds a message at the back; returns how many messages were dropped to make room (0 or 1). */
  push(message: OutgoingMessage): number {
    if (replaceable(message)) this.#removeRetained(message.topic);
    this.#items.push(message);
    return this.#trim();
  }

  /**
   * Puts messages back at the front, in their order (messages that were in flight when the
   * connection was lost); returns how many were dropped to stay within the limit.
   */
  requeue(messages: readonly OutgoingMessage[]): number {
    const back = messages.filter((m) =>
      !replaceable(m) || !this.#items.some((q) => replaceable(q) && q.topic === m.topic)
    );
    this.#items.unshift(...back);
    return this.#trim();
  }

  /** Takes the message at the front. */
  shift(): OutgoingMessage | undefined {
    return this.#items.shift();
  }

  /** Removes every message; returns how many there were. */
  clear(): number {
    const n = this.#items.length;
    this.#items = [];
    return n;
  }

  #removeRetained(topic: string): void {
    const i = this.#items.findIndex((m) => replaceable(m) && m.topic === topic);
    if (i >= 0) this.#items.splice(i, 1);
  }

  #trim(): number {
    let dropped = 0;
    while (this.#items.length > this.limit) {
      const i = this.#items.findIndex((m) => m.qos === 0);
      this.#items.splice(i >= 0 ? i : 0, 1);
      dropped++;
    }
    this.#dropped += dropped;
    return dropped;
  }
}

function replaceable(m: OutgoingMessage): boolean {
  return m.retain && m.replaceable !== false;
}
