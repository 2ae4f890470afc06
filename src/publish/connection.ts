/**
 * One broker connection that never blocks its caller: the mqtt.js client, its protocol
 * fallback, the in-flight window, and reconnects. It knows nothing of frames or topics;
 * the publisher (`publisher.ts`) turns domain data into {@linkcode OutgoingMessage}s and
 * hands them here, and the command receiver (`command_receiver.ts`) subscribes here.
 *
 * Backpressure policy: {@linkcode MqttConnection.publish} never blocks and never throws.
 * Messages go into a bounded {@linkcode OutgoingQueue}; while the broker is away they wait
 * there, beyond `queueLimit` the oldest QoS 0 message (else the oldest) is dropped and
 * counted. At most `maxInFlight` messages (or the broker's Receive Maximum) are sent and
 * not yet acknowledged. The connection is retried with the jittered exponential
 * {@linkcode Backoff}, a fresh mqtt.js client each time, and on reconnect the queue drains
 * in order. Messages in flight when a connection drops go back to the front of the queue,
 * so a QoS 1 message that fits the queue survives a broker restart (delivery is at least
 * once: a consumer may see a duplicate).
 *
 * Protocol: MQTT 5 unless `protocolVersion` says otherwise; a broker that refuses 5 gets
 * 3.1.1 on the next attempt, at once (the embedded broker speaks 3.1.1 only). Every scheme of
 * `MQTT_SCHEMES` (`core/mqtt_url.ts`) works: TCP (`mqtt`, `tcp`), TLS (`mqtts`, `tls`) and
 * WebSocket (`ws`, `wss`, the URL path being the WebSocket path).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import mqtt, {
  type IClientOptions,
  type IClientPublishOptions,
  type IClientSubscribeOptions,
  type MqttClient,
} from "mqtt";
import { Backoff } from "../core/backoff.ts";
import { assertPositiveInteger } from "../core/check.ts";
import { errorMessage } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { redact } from "../core/redact.ts";
import { clientOptions, type LastWill } from "./client_options.ts";
import { type OutgoingMessage, OutgoingQueue } from "./queue.ts";
import type { TlsFileOptions } from "./tls_files.ts";
import { matchesFilter } from "./topics.ts";
import { WarnOnce } from "./warn_once.ts";

export type { LastWill } from "./client_options.ts";

/** Options of {@linkcode MqttConnection}. */
export interface MqttConnectionOptions {
  /**
   * The broker, `<scheme>://host:port[/path]` with a scheme of `MQTT_SCHEMES`
   * (`core/mqtt_url.ts`): `mqtt` or `tcp` (TCP), `mqtts` or `tls` (TLS), `ws` or `wss`
   * (WebSocket; the URL path is the WebSocket path, e.g. `/mqtt`).
   */
  readonly url: string;
  readonly clientId: string;
  /** MQTT protocol version: 5, or 4 (3.1.1). Default: 5, falling back to 4 (see the module doc). */
  readonly protocolVersion?: 4 | 5;
  /** TLS files (a TLS scheme only: `mqtts`, `tls`, `wss`), read at construction. */
  readonly tls?: TlsFileOptions;
  readonly username?: string;
  /** Never logged. */
  readonly password?: string;
  /** Most messages waiting while the broker is away (a pipeline's `mqtt.queue_limit`). */
  readonly queueLimit: number;
  /** Most messages sent and not yet acknowledged. Default 32 (or the broker's Receive Maximum). */
  readonly maxInFlight?: number;
  /** The last will, registered with every connection. */
  readonly will?: LastWill;
  /** A message sent first on every connection (before anything queued), e.g. `online`. */
  readonly birth?: OutgoingMessage;
  /** Reconnect backoff: first delay, ms. Default 500. */
  readonly reconnectMinMs?: number;
  /** Reconnect backoff: longest delay, ms. Default 30 000. */
  readonly reconnectMaxMs?: number;
  /** Give up a connection attempt after this long, ms. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /** MQTT keep-alive, seconds. Default 30. */
  readonly keepaliveS?: number;
  /** On close, how long to wait for the queue to drain, ms. Default 2000. */
  readonly closeTimeoutMs?: number;
  readonly logger?: Logger;
  /** Aborting it closes the connection (as {@linkcode MqttConnection.close}). */
  readonly signal?: AbortSignal;
}

/** The keys of {@linkcode ConnectionSettings}. */
export const CONNECTION_SETTINGS = [
  "url",
  "clientId",
  "protocolVersion",
  "tls",
  "username",
  "password",
  "queueLimit",
  "maxInFlight",
  "reconnectMinMs",
  "reconnectMaxMs",
  "connectTimeoutMs",
  "keepaliveS",
  "closeTimeoutMs",
] as const satisfies readonly (keyof MqttConnectionOptions)[];

/**
 * The options of a connection that its owner (the publisher) takes and passes through as
 * they are: the broker, the credentials, the limits and the timings.
 */
export type ConnectionSettings = Pick<MqttConnectionOptions, typeof CONNECTION_SETTINGS[number]>;

/** A message that arrived on a subscription. */
export interface IncomingMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  /** Whether the broker sent it as a retained message. */
  readonly retained: boolean;
}

/** A subscription, made again on every connection. */
export interface MqttSubscription {
  /** The topic filter (wildcards allowed). */
  readonly filter: string;
  readonly qos: 0 | 1 | 2;
  /** What the messages are, for log lines ("commands"). */
  readonly name: string;
  /** On MQTT 5, ask the broker to send no retained message on subscribe (retain handling 2). */
  readonly skipRetained?: boolean;
  /** Receives each message whose topic matches `filter`; what it throws is logged. */
  readonly onMessage: (message: IncomingMessage) => void;
}

/** A connection's counters. */
export interface ConnectionCounters {
  /** Whether a broker connection is up. */
  readonly connected: boolean;
  /** Messages waiting or in flight. */
  readonly queued: number;
  /** Messages the broker acknowledged (QoS 1, 2) or that were written (QoS 0). */
  readonly published: number;
  /** Messages lost: queue overflow, refused by the broker, or left (or given) at close. */
  readonly dropped: number;
  /** Successful connections after the first. */
  readonly reconnects: number;
}

interface InFlight {
  readonly message: OutgoingMessage;
  readonly client: MqttClient;
}

const TRANSPORT_ERROR = /connection closed|disconnect|stream|socket|ECONN|EPIPE/i;

/**
 * A broker connection with a bounded outgoing queue (see the module doc). Connecting
 * starts at construction; nothing waits for it.
 *
 * @example
 * ```ts
 * async function hello(signal: AbortSignal) {
 *   await using connection = new MqttConnection({
 *     url: "ws://127.0.0.1:9001/mqtt",
 *     clientId: "c1",
 *     queueLimit: 1000,
 *   });
 *   connection.publish({ topic: "t", payload: "hello", qos: 1, retain: false });
 *   await connection.flush({ signal });
 * }
 * ```
 */
export class MqttConnection implements AsyncDisposable {
  /** The broker URL with any credentials redacted. */
  readonly url: string;
  /** The client id. */
  readonly clientId: string;
  readonly #rawUrl: string;
  readonly #log: Logger;
  readonly #warn: WarnOnce;
  readonly #secrets: readonly string[];
  readonly #queue: OutgoingQueue;
  readonly #maxInFlight: number;
  readonly #clientOptions: IClientOptions;
  readonly #birth: OutgoingMessage | undefined;
  readonly #backoff: Backoff;
  readonly #closeTimeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  readonly #protocolFixed: boolean;
  readonly #subscriptions: MqttSubscription[] = [];
  #protocolVersion: 4 | 5;
  #client: MqttClient | undefined;
  #connected = false;
  #window: number;
  readonly #inFlight = new Map<number, InFlight>();
  #nextId = 0;
  #published = 0;
  #dropped = 0;
  #connections = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #retryNow = false;
  #closing: Promise<void> | undefined;
  #waiters: Array<() => void> = [];
  readonly #ending = new Set<Promise<void>>();
  #draining = false;

  /**
   * Makes the connection and starts connecting.
   *
   * @throws {RangeError} when the URL, a limit or a backoff delay is invalid, or TLS files
   * come with a URL that is not TLS.
   * @throws {Error} when a TLS file cannot be read ("Cannot read MQTT TLS ... file").
   */
  constructor(options: MqttConnectionOptions) {
    const setup = clientOptions(options);
    this.url = setup.url;
    this.#secrets = setup.secrets;
    this.#clientOptions = setup.options;
    this.#rawUrl = options.url;
    this.clientId = options.clientId;
    this.#log = options.logger ?? createLogger({ scope: "mqtt" });
    this.#warn = new WarnOnce(this.#log, (text) => this.redact(text));
    this.#queue = new OutgoingQueue(options.queueLimit);
    this.#maxInFlight = assertPositiveInteger(
      options.maxInFlight ?? 32,
      "max in flight",
      "Cannot connect to MQTT broker",
    );
    this.#window = this.#maxInFlight;
    this.#birth = options.birth;
    const reconnectMinMs = options.reconnectMinMs ?? 500;
    this.#backoff = new Backoff({
      initialMs: reconnectMinMs,
      maxMs: Math.max(options.reconnectMaxMs ?? 30_000, reconnectMinMs),
    });
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.#protocolVersion = options.protocolVersion ?? 5;
    this.#protocolFixed = options.protocolVersion !== undefined;
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.#closing = Promise.resolve();
      return;
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#connect();
  }

  /** Whether a broker connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The MQTT protocol version in use (5, or 4 after a fallback). */
  get protocolVersion(): 4 | 5 {
    return this.#protocolVersion;
  }

  /** The connection's counters. */
  get counters(): ConnectionCounters {
    return {
      connected: this.#connected,
      queued: this.#queue.length + this.#inFlight.size,
      published: this.#published,
      dropped: this.#queue.dropped + this.#dropped,
      reconnects: Math.max(0, this.#connections - 1),
    };
  }

  /** `text` with the connection's secrets (password, URL credentials) replaced by `***`. */
  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  /**
   * Queues a message (see the module doc for the drop policy) and sends what the window
   * allows. Never throws and never waits; once closing, the message is dropped and counted.
   */
  publish(message: OutgoingMessage): void {
    if (this.#closing !== undefined) {
      this.#dropped++;
      return;
    }
    this.#enqueue(message);
  }

  /**
   * Subscribes on this and every later connection; `subscription.onMessage` receives the
   * messages whose topic matches its filter.
   */
  subscribe(subscription: MqttSubscription): void {
    this.#subscriptions.push(subscription);
    const client = this.#client;
    if (this.#connected && client !== undefined) this.#subscribe(client, subscription);
  }

  /**
   * Resolves once a broker connection is up.
   *
   * @throws {DOMException} (`AbortError` / `TimeoutError`) when `signal` aborts first.
   * @throws {Error} when the connection closes first.
   */
  waitConnected(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor(() => this.#connected, "connect", options.signal);
  }

  /**
   * Resolves once nothing waits or is in flight (every queued message was published or
   * dropped).
   *
   * @throws {DOMException} when `signal` aborts first.
   * @throws {Error} when the connection closes first with messages left.
   */
  flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor(
      () => this.#queue.length === 0 && this.#inFlight.size === 0,
      "flush",
      options.signal,
    );
  }

  /**
   * Closes the connection: waits up to `closeTimeoutMs` for the queue to drain, then
   * disconnects cleanly (so the last will is not sent). Messages still queued are counted
   * as dropped. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    if (this.#connected) {
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), this.#closeTimeoutMs);
      await this.#waitFor(
        () => this.#queue.length === 0 && this.#inFlight.size === 0,
        "close",
        timeout.signal,
        true,
      ).catch(() => {});
      clearTimeout(timer);
    }
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const client = this.#client;
    this.#client = undefined;
    const wasConnected = this.#connected;
    this.#connected = false;
    const left = this.#queue.clear() + this.#inFlight.size;
    this.#inFlight.clear();
    this.#dropped += left;
    if (left > 0) this.#log.warn("closing with unsent MQTT messages", { dropped: left });
    if (client !== undefined) this.#ending.add(endClient(client, !wasConnected));
    await Promise.all(this.#ending);
    this.#notify();
  }

  #enqueue(message: OutgoingMessage): void {
    const dropped = this.#queue.push(message);
    if (dropped > 0 && (this.#queue.dropped === dropped || this.#queue.dropped % 100 === 0)) {
      this.#log.warn("MQTT queue full: dropping the oldest messages", {
        limit: this.#queue.limit,
        dropped: this.#queue.dropped,
      });
    }
    this.#drain();
  }

  #connect(): void {
    if (this.#closing !== undefined) return;
    this.#reconnectTimer = undefined;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.#rawUrl, {
        ...this.#clientOptions,
        protocolVersion: this.#protocolVersion,
      });
    } catch (e) {
      this.#log.error("Cannot connect to MQTT broker", { url: this.url, error: this.#clean(e) });
      this.#scheduleReconnect();
      return;
    }
    this.#client = client;
    client.on("connect", (connack) => {
      if (this.#client !== client) return;
      this.#connected = true;
      this.#backoff.reset();
      this.#connections++;
      const receiveMaximum = connack.properties?.receiveMaximum;
      this.#window = Math.min(this.#maxInFlight, receiveMaximum ?? this.#maxInFlight);
      this.#log.info(
        this.#connections === 1 ? "connected to MQTT broker" : "reconnected to MQTT broker",
        {
          url: this.url,
          clientId: this.clientId,
          protocol: this.#protocolVersion === 5 ? "5" : "3.1.1",
          queued: this.#queue.length,
        },
      );
      if (this.#birth !== undefined) this.#queue.requeue([this.#birth]);
      for (const s of this.#subscriptions) this.#subscribe(client, s);
      this.#drain();
      this.#notify();
    });
    client.on("message", (topic, payload, packet) => {
      if (this.#client !== client) return;
      this.#receive({ topic, payload: new Uint8Array(payload), retained: packet.retain });
    });
    client.on("error", (e) => {
      if (this.#client !== client) return;
      const code = (e as { code?: unknown }).code;
      if (
        this.#protocolVersion === 5 && !this.#protocolFixed && !this.#connected &&
        (code === 1 || code === 132)
      ) {
        this.#protocolVersion = 4;
        this.#backoff.reset();
        this.#retryNow = true;
        this.#log.info("the MQTT broker refuses protocol 5: using MQTT 3.1.1", { url: this.url });
        return;
      }
      const attempt = this.#backoff.attempt;
      const level = attempt === 0 || attempt % 10 === 0 ? "warn" : "debug";
      this.#log[level](
        this.#connected ? "MQTT connection error" : "Cannot connect to MQTT broker",
        { url: this.url, error: this.#clean(e), attempt: attempt + 1 },
      );
    });
    client.on("close", () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      const wasConnected = this.#connected;
      this.#connected = false;
      this.#requeueInFlight(client);
      const ended = endClient(client, true);
      this.#ending.add(ended);
      ended.then(() => this.#ending.delete(ended));
      if (this.#closing !== undefined) return;
      if (wasConnected) {
        this.#log.warn("lost the MQTT broker connection: queueing", {
          url: this.url,
          queued: this.#queue.length,
        });
      }
      this.#scheduleReconnect();
    });
  }

  #subscribe(client: MqttClient, subscription: MqttSubscription): void {
    const { filter, name } = subscription;
    const options: IClientSubscribeOptions = { qos: subscription.qos };
    if (this.#protocolVersion === 5 && subscription.skipRetained) options.rh = 2;
    client.subscribe(filter, options, (error, granted) => {
      if (this.#client !== client) return;
      const refused = granted?.some((g) => g.qos === 128) ?? false;
      if ((error !== undefined && error !== null) || refused) {
        this.#log.warn(`Cannot subscribe to MQTT ${name}`, {
          topic: filter,
          error: error ? this.#clean(error) : "refused by the broker",
        });
      } else {
        this.#log.debug(`subscribed to MQTT ${name}`, { topic: filter });
      }
    });
  }

  #receive(message: IncomingMessage): void {
    for (const s of this.#subscriptions) {
      if (!matchesFilter(s.filter, message.topic)) continue;
      try {
        s.onMessage(message);
      } catch (e) {
        this.#log.warn(`the MQTT ${s.name} handler failed`, {
          topic: message.topic,
          error: this.#clean(e),
        });
      }
    }
  }

  #scheduleReconnect(): void {
    if (this.#closing !== undefined || this.#reconnectTimer !== undefined) return;
    const delay = this.#retryNow ? 0 : this.#backoff.next();
    this.#retryNow = false;
    this.#log.debug("reconnecting to MQTT broker", { url: this.url, inMs: delay });
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  #requeueInFlight(client: MqttClient): void {
    const back: OutgoingMessage[] = [];
    for (const [id, entry] of [...this.#inFlight].sort((a, b) => a[0] - b[0])) {
      if (entry.client !== client) continue;
      this.#inFlight.delete(id);
      // The birth message goes first on every connection anyway: an unacknowledged one is
      // not sent twice (nor counted as queued while the broker is away).
      if (entry.message !== this.#birth) back.push(entry.message);
    }
    if (back.length > 0) this.#queue.requeue(back);
  }

  #drain(): void {
    const client = this.#client;
    if (!this.#connected || client === undefined || this.#draining) return;
    this.#draining = true; // QoS 0 callbacks may run inside publish(): no recursion
    try {
      this.#drainLoop(client);
    } finally {
      this.#draining = false;
    }
  }

  #drainLoop(client: MqttClient): void {
    while (
      this.#connected && this.#client === client && this.#inFlight.size < this.#window &&
      this.#queue.length > 0
    ) {
      const message = this.#queue.shift()!;
      const id = this.#nextId++;
      this.#inFlight.set(id, { message, client });
      const options: IClientPublishOptions = { qos: message.qos, retain: message.retain };
      if (this.#protocolVersion === 5 && message.properties !== undefined) {
        options.properties = message.properties;
      }
      const payload = typeof message.payload === "string"
        ? message.payload
        : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.length);
      client.publish(message.topic, payload, options, (error) => {
        if (!this.#inFlight.has(id)) return; // requeued or closed meanwhile
        if (error !== undefined && error !== null) {
          const code = (error as { code?: unknown }).code;
          if (typeof code !== "number" && TRANSPORT_ERROR.test(error.message)) {
            return; // the connection is going: "close" puts the message back in the queue
          }
          this.#inFlight.delete(id);
          this.#dropped++;
          this.#warn.warn(
            `refused:${message.topic}:${error.message}`,
            "the MQTT broker refused a message",
            { topic: message.topic, error },
          );
        } else {
          this.#inFlight.delete(id);
          this.#published++;
        }
        this.#drain();
        this.#notify();
      });
    }
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #waitFor(
    done: () => boolean,
    what: string,
    signal: AbortSignal | undefined,
    whileClosing = false,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (signal?.aborted) {
          reject(signal.reason);
        } else if (done()) {
          resolve();
        } else if (this.#closing !== undefined && !whileClosing) {
          reject(new Error(`Cannot ${what}: the MQTT connection is closed`));
        } else {
          this.#waiters.push(check);
          return;
        }
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      check();
    });
  }

  #clean(e: unknown): string {
    return this.redact(errorMessage(e));
  }
}

/** Ends an mqtt.js client (forced: no DISCONNECT) and waits for it. */
function endClient(client: MqttClient, force: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      client.end(force, {}, () => resolve());
    } catch {
      resolve();
    }
  });
}
