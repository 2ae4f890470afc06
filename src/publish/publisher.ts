/**
 * The MQTT publisher: scored frames, camera status, anomaly events and statistics out to
 * a broker, under the topic tree of `topics.ts` with the payloads of `payloads.ts` and
 * `map_png.ts` (all described in `docs/mqtt.md`).
 *
 * Backpressure policy: publishing never blocks and never throws. Messages go into a
 * bounded {@linkcode OutgoingQueue}; while the broker is away they wait there, beyond
 * `queueLimit` the oldest QoS 0 message (else the oldest) is dropped and counted. The
 * connection is retried with jittered exponential backoff, and on reconnect the queue
 * drains in order. Messages in flight when a connection drops (sent, not yet
 * acknowledged) go back to the front of the queue, so a QoS 1 event that fits the queue
 * survives a broker restart (delivery is at least once: a consumer may see a duplicate).
 *
 * Commands in: with `onCommand`, the publisher subscribes to `<prefix>/+/set/+` on every
 * connection (so again after each reconnect) and hands each parsed command to the
 * callback; malformed, unknown and retained commands are logged and ignored.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt";
import type { CameraStatus, ScoredFrame } from "../core/frame.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { redact } from "../core/redact.ts";
import type { PipelineStatus } from "../core/status.ts";
import { type Command, parseCommand } from "./commands.ts";
import { type AnomalyEvent, EventTracker, type EventTrackerOptions } from "./events.ts";
import { encodeMapPng, MAP_ENCODING } from "./map_png.ts";
import {
  eventMessage,
  modelMessage,
  type ModelState,
  type ModelUpdate,
  scoreMessage,
  statsMessage,
  type StatsSample,
  statusMessage,
} from "./payloads.ts";
import { type OutgoingMessage, type OutgoingProperties, OutgoingQueue } from "./queue.ts";
import { checkCameraName, DEFAULT_PREFIX, type Topics, topics } from "./topics.ts";

/**
 * Options of the `<prefix>/<camera>/map` topic. Cadence: a frame is eligible when
 * `onlyAnomalous` is off or the frame is anomalous; of a camera's eligible frames, the
 * 1st, (N+1)th, (2N+1)th ... are published (N = `everyN`).
 */
export interface MapPublishOptions {
  /** Publish every Nth eligible frame's map; 1 = every one, 0 = never. Default 1. */
  readonly everyN?: number;
  /** Only anomalous frames are eligible. Default false. */
  readonly onlyAnomalous?: boolean;
  /** PNG width; default the map's own width. */
  readonly width?: number;
  /** PNG height; default the map's own height. */
  readonly height?: number;
}

/** TLS files, as paths, read once when the publisher is made. */
export interface TlsFileOptions {
  /** CA certificate(s) (PEM) that the broker's certificate must chain to. */
  readonly ca?: string;
  /** Client certificate (PEM), for brokers that require one. */
  readonly cert?: string;
  /** The client certificate's private key (PEM). */
  readonly key?: string;
  /** Check the broker's certificate. Default true. */
  readonly rejectUnauthorized?: boolean;
}

/** Options of {@linkcode MqttPublisher}. */
export interface MqttPublisherOptions {
  /** `mqtt://host:port` or `mqtts://host:port` (TLS). */
  readonly url: string;
  /** Default `efficientad-<8 random hex digits>`. */
  readonly clientId?: string;
  /** Topic prefix. Default `efficientad`. */
  readonly prefix?: string;
  /**
   * QoS of `score`, `map` and `stats`. `event`, `status` and `available` use
   * `max(qos, 1)`. Default 1.
   */
  readonly qos?: 0 | 1 | 2;
  /** Retain `status` messages. Default true. */
  readonly retainStatus?: boolean;
  /**
   * MQTT protocol version: 5, or 4 (3.1.1). Default: 5, falling back to 4 by itself when
   * the broker refuses 5 (the embedded broker speaks 3.1.1 only).
   */
  readonly protocolVersion?: 4 | 5;
  /** TLS files (use an `mqtts://` URL). */
  readonly tls?: TlsFileOptions;
  readonly username?: string;
  /** Never logged. */
  readonly password?: string;
  /** Most messages waiting while the broker is away. Default 1000. */
  readonly queueLimit?: number;
  /** Most messages sent and not yet acknowledged. Default 32 (or the broker's Receive Maximum). */
  readonly maxInFlight?: number;
  readonly map?: MapPublishOptions;
  readonly events?: EventTrackerOptions;
  /** Period of `<prefix>/stats`, ms; 0 disables it. Needs `stats`. Default 10 000. */
  readonly statsIntervalMs?: number;
  /** Period of re-publishing every camera's `status`, ms; 0 disables it. Default 30 000. */
  readonly statusIntervalMs?: number;
  /** Where periodic stats (and camera statuses) come from. */
  readonly stats?: () => PipelineStatus;
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
  /** Aborting it closes the publisher (as {@linkcode MqttPublisher.close}). */
  readonly signal?: AbortSignal;
  /** The clock, epoch ms. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Receives the commands published on `<prefix>/<camera>/set/<command>` (see
   * `commands.ts`), parsed. Without it the publisher subscribes to nothing. A callback
   * that throws is logged; the publisher goes on.
   */
  readonly onCommand?: (command: Command) => void;
}

/** The publisher's counters, for `<prefix>/stats`, `/status` and `/metrics`. */
export interface PublisherCounters {
  /** Whether a broker connection is up. */
  readonly connected: boolean;
  /** Messages waiting or in flight. */
  readonly queued: number;
  /** Messages the broker acknowledged (QoS 1, 2) or that were written (QoS 0). */
  readonly published: number;
  /** Messages lost: queue overflow, refused by the broker, unbuildable, or left at close. */
  readonly dropped: number;
  /** Successful connections after the first. */
  readonly reconnects: number;
}

/** Counts of the commands in (see {@linkcode MqttPublisherOptions.onCommand}). */
export interface CommandCounters {
  /** Commands parsed and handed to `onCommand`. */
  readonly received: number;
  /** Commands ignored: malformed, unknown or retained. */
  readonly rejected: number;
}

/** Lifecycle steps that a newer `model` message never replaces in the outgoing queue. */
const KEPT_MODEL_STATES: ReadonlySet<ModelState> = new Set([
  "validating",
  "promoted",
  "refused",
  "rolled_back",
  "failed",
]);

interface InFlight {
  readonly message: OutgoingMessage;
  readonly client: MqttClient;
}

interface CameraContext {
  threshold: number | undefined;
  modelVersion: string;
  frames: number;
  /** Frames eligible for a map so far. */
  mapEligible: number;
}

const TRANSPORT_ERROR = /connection closed|disconnect|stream|socket|ECONN|EPIPE/i;

/**
 * Publishes the service's output to an MQTT broker (see the module doc for the queueing
 * policy). Connecting starts at construction; nothing waits for it.
 *
 * @example
 * ```ts
 * import { MqttPublisher } from "./publisher.ts";
 * import type { ScoredFrame } from "../core/frame.ts";
 *
 * async function publish(scored: ReadableStream<ScoredFrame>, signal: AbortSignal) {
 *   await using publisher = new MqttPublisher({ url: "mqtt://127.0.0.1:1883", signal });
 *   await scored.pipeTo(publisher.writable, { signal });
 * }
 * ```
 */
export class MqttPublisher implements AsyncDisposable {
  /** The broker URL with any credentials redacted. */
  readonly url: string;
  /** The topic tree. */
  readonly topics: Topics;
  /** The client id. */
  readonly clientId: string;
  readonly #rawUrl: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #secrets: string[];
  readonly #qos: 0 | 1 | 2;
  readonly #reliableQos: 1 | 2;
  readonly #retainStatus: boolean;
  readonly #queue: OutgoingQueue;
  readonly #maxInFlight: number;
  readonly #map: {
    readonly everyN: number;
    readonly onlyAnomalous: boolean;
    readonly size: [number, number] | undefined;
  };
  readonly #tracker: EventTracker;
  readonly #clientOptions: IClientOptions;
  readonly #reconnectMinMs: number;
  readonly #reconnectMaxMs: number;
  readonly #closeTimeoutMs: number;
  readonly #statsProvider: (() => PipelineStatus) | undefined;
  readonly #onCommand: ((command: Command) => void) | undefined;
  #commands = 0;
  #commandsRejected = 0;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  #protocolVersion: 4 | 5;
  readonly #protocolFixed: boolean;
  #client: MqttClient | undefined;
  #connected = false;
  #window: number;
  readonly #inFlight = new Map<number, InFlight>();
  #nextId = 0;
  #published = 0;
  #droppedOther = 0;
  #connections = 0;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #cameras = new Map<string, CameraContext>();
  readonly #statuses = new Map<string, CameraStatus>();
  #lastStats: StatsSample | undefined;
  #closing: Promise<void> | undefined;
  #waiters: Array<() => void> = [];
  #writable: WritableStream<ScoredFrame> | undefined;
  readonly #warned = new Set<string>();
  readonly #ending = new Set<Promise<void>>();
  #draining = false;
  #retryNow = false;

  /**
   * Makes the publisher and starts connecting.
   *
   * @throws {RangeError} when the URL, prefix, QoS, limits, map size or event thresholds
   * are invalid.
   * @throws {Error} when a TLS file cannot be read ("Cannot read MQTT TLS ... file").
   */
  constructor(options: MqttPublisherOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new RangeError(`Cannot use MQTT broker URL ${redact(options.url)}: not a URL`);
    }
    if (!["mqtt:", "mqtts:", "tcp:", "ssl:"].includes(parsed.protocol)) {
      throw new RangeError(
        `Cannot use MQTT broker URL ${redact(options.url)}: expected mqtt:// or mqtts://`,
      );
    }
    const tlsUrl = parsed.protocol === "mqtts:" || parsed.protocol === "ssl:";
    if (options.tls !== undefined && !tlsUrl) {
      throw new RangeError(
        `Cannot use TLS files with MQTT broker URL ${redact(options.url)}: use mqtts://`,
      );
    }
    this.#rawUrl = options.url;
    this.#secrets = [
      options.password,
      parsed.password,
      safeDecode(parsed.password),
    ].filter((s): s is string => s !== undefined && s !== "");
    this.url = redact(options.url, this.#secrets);
    this.topics = topics(options.prefix ?? DEFAULT_PREFIX);
    this.clientId = options.clientId ??
      `efficientad-${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    this.#log = options.logger ?? createLogger({ scope: "mqtt" });
    this.#now = options.now ?? Date.now;
    const qos = options.qos ?? 1;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new RangeError(`Cannot use MQTT QoS ${qos}: expected 0, 1 or 2`);
    }
    this.#qos = qos;
    this.#reliableQos = qos === 2 ? 2 : 1;
    this.#retainStatus = options.retainStatus ?? true;
    this.#queue = new OutgoingQueue(options.queueLimit ?? 1000);
    this.#maxInFlight = positiveInt(options.maxInFlight ?? 32, "max in flight");
    this.#window = this.#maxInFlight;
    const map = options.map ?? {};
    const everyN = map.everyN ?? 1;
    if (!Number.isInteger(everyN) || everyN < 0) {
      throw new RangeError(
        `Cannot publish maps every ${everyN} frames: expected a whole number >= 0`,
      );
    }
    if ((map.width === undefined) !== (map.height === undefined)) {
      throw new RangeError("Cannot publish maps: give both width and height, or neither");
    }
    this.#map = {
      everyN,
      onlyAnomalous: map.onlyAnomalous ?? false,
      size: map.width !== undefined && map.height !== undefined
        ? [positiveInt(map.height, "map height"), positiveInt(map.width, "map width")]
        : undefined,
    };
    this.#tracker = new EventTracker(options.events);
    this.#reconnectMinMs = options.reconnectMinMs ?? 500;
    this.#reconnectMaxMs = Math.max(options.reconnectMaxMs ?? 30_000, this.#reconnectMinMs);
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.#statsProvider = options.stats;
    this.#onCommand = options.onCommand;
    this.#protocolVersion = options.protocolVersion ?? 5;
    this.#protocolFixed = options.protocolVersion !== undefined;
    this.#clientOptions = {
      clientId: this.clientId,
      clean: true,
      reconnectPeriod: 0, // reconnects are ours: backoff, and a fresh client each time
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      keepalive: options.keepaliveS ?? 30,
      queueQoSZero: false,
      resubscribe: false,
      will: {
        topic: this.topics.available,
        payload: Buffer.from("offline"),
        qos: this.#reliableQos,
        retain: true,
      },
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...readTls(options.tls),
    };
    this.#signal = options.signal;
    const statsMs = options.statsIntervalMs ?? 10_000;
    if (statsMs > 0 && this.#statsProvider !== undefined) {
      this.#timers.push(setInterval(() => this.#tickStats(), statsMs));
    }
    const statusMs = options.statusIntervalMs ?? 30_000;
    if (statusMs > 0) this.#timers.push(setInterval(() => this.#tickStatus(), statusMs));
    if (this.#signal?.aborted) {
      this.#closing = Promise.resolve();
      this.#clearTimers();
      return;
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#connect();
  }

  /** Whether a broker connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The publisher's counters. */
  get counters(): PublisherCounters {
    return {
      connected: this.#connected,
      queued: this.#queue.length + this.#inFlight.size,
      published: this.#published,
      dropped: this.#queue.dropped + this.#droppedOther,
      reconnects: Math.max(0, this.#connections - 1),
    };
  }

  /** Counts of the commands in. */
  get commandCounters(): CommandCounters {
    return { received: this.#commands, rejected: this.#commandsRejected };
  }

  /** The MQTT protocol version in use (5, or 4 after a fallback). */
  get protocolVersion(): 4 | 5 {
    return this.#protocolVersion;
  }

  /**
   * A sink for the inference stage: each written frame goes to {@linkcode publishFrame}.
   * Writes resolve at once (the queue never blocks); closing or aborting the stream does
   * not close the publisher.
   */
  get writable(): WritableStream<ScoredFrame> {
    this.#writable ??= new WritableStream<ScoredFrame>({
      write: (scored) => this.publishFrame(scored),
    });
    return this.#writable;
  }

  /**
   * Queues a scored frame's `score` message, its `map` when the cadence says so, and the
   * anomaly event it causes, if any. Never throws and never waits; a frame that cannot be
   * encoded is logged and counted as dropped. Does nothing once closing.
   */
  publishFrame(scored: ScoredFrame): void {
    if (this.#closing !== undefined) return;
    const { frame } = scored;
    try {
      checkCameraName(frame.camera);
      const now = this.#now();
      const context = this.#context(frame.camera);
      context.threshold = scored.threshold;
      context.modelVersion = scored.modelVersion;
      context.frames++;
      this.#enqueue({
        topic: this.topics.score(frame.camera),
        payload: JSON.stringify(scoreMessage(scored, now)),
        qos: this.#qos,
        retain: false,
        properties: JSON_PROPERTIES,
      });
      if (this.#wantsMap(scored, context)) this.#enqueueMap(scored);
      const event = this.#tracker.observe({
        camera: frame.camera,
        seq: frame.seq,
        at: frame.capturedAt,
        score: scored.score,
        anomalous: scored.anomalous,
        ...(scored.normalizedScore !== undefined
          ? { normalizedScore: scored.normalizedScore }
          : {}),
      });
      if (event !== undefined) this.#enqueueEvent(event);
    } catch (e) {
      this.#droppedOther++;
      this.#warnOnce(
        `frame:${e instanceof Error ? e.message : String(e)}`,
        "Cannot publish frame",
        { camera: frame.camera, seq: frame.seq, error: e },
      );
    }
  }

  /**
   * Records a camera's status and queues its retained `status` message when the state or
   * the last error changed (else it goes out with the next periodic re-publish). A camera
   * that goes `reconnecting` or `offline` ends its active anomaly event (`stream_lost`).
   * Never throws.
   */
  publishStatus(status: CameraStatus): void {
    if (this.#closing !== undefined) return;
    try {
      checkCameraName(status.camera);
      const before = this.#statuses.get(status.camera);
      this.#statuses.set(status.camera, status);
      if (status.state === "reconnecting" || status.state === "offline") {
        const event = this.#tracker.end(status.camera, "stream_lost");
        if (event !== undefined) this.#enqueueEvent(event);
      }
      if (
        before === undefined || before.state !== status.state ||
        before.lastError !== status.lastError
      ) {
        this.#enqueueStatus(status);
      }
    } catch (e) {
      this.#droppedOther++;
      this.#warnOnce(`status:${status.camera}`, "Cannot publish status", {
        camera: status.camera,
        error: e,
      });
    }
  }

  /**
   * Queues a retained `<prefix>/<camera>/model` message (QoS `max(qos, 1)`) for a step of
   * the retraining lifecycle. While the broker is away it waits in the queue like an
   * event; of the progress steps (`idle`, `collecting`, `training`) only the latest per
   * camera is kept there, the others (`validating`, `promoted`, `refused`, `rolled_back`,
   * `failed`) are all kept. Never throws: an invalid camera name is logged and counted as
   * dropped. Does nothing once closing.
   *
   * @example
   * ```ts
   * import type { MqttPublisher } from "./publisher.ts";
   *
   * function reportTraining(publisher: MqttPublisher): void {
   *   publisher.publishModel("line-1", {
   *     state: "training",
   *     modelVersion: "efficientad-s@3",
   *     trigger: "drift",
   *     training: { step: 400, total: 2000, loss: 0.0123, etaMs: 95_000 },
   *   });
   * }
   * ```
   */
  publishModel(camera: string, update: ModelUpdate): void {
    if (this.#closing !== undefined) return;
    try {
      this.#enqueue({
        topic: this.topics.model(camera),
        payload: JSON.stringify(modelMessage(camera, update, this.#now())),
        qos: this.#reliableQos,
        retain: true,
        properties: JSON_PROPERTIES,
        replaceable: !KEPT_MODEL_STATES.has(update.state),
      });
    } catch (e) {
      this.#droppedOther++;
      this.#warnOnce(`model:${camera}`, "Cannot publish model state", { camera, error: e });
    }
  }

  /**
   * Queues a `<prefix>/stats` message built from `status` (the `mqtt` counters are the
   * publisher's own). Rates are computed against the previous stats message. Never throws.
   */
  publishStats(status: PipelineStatus): void {
    if (this.#closing !== undefined) return;
    try {
      const counters = this.counters;
      const sample: StatsSample = {
        at: this.#now(),
        status: { ...status, mqtt: { ...status.mqtt, ...counters } },
        scored: new Map([...this.#cameras].map(([camera, c]) => [camera, c.frames])),
      };
      const message = statsMessage(sample, this.#lastStats);
      this.#lastStats = sample;
      this.#enqueue({
        topic: this.topics.stats,
        payload: JSON.stringify(message),
        qos: this.#qos,
        retain: false,
        properties: JSON_PROPERTIES,
      });
    } catch (e) {
      this.#droppedOther++;
      this.#warnOnce("stats", "Cannot publish stats", { error: e });
    }
  }

  /**
   * Resolves once a broker connection is up.
   *
   * @throws {DOMException} (`AbortError` / `TimeoutError`) when `signal` aborts first.
   * @throws {Error} when the publisher closes first.
   */
  waitConnected(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor(() => this.#connected, "connect", options.signal);
  }

  /**
   * Resolves once nothing waits or is in flight (every queued message was published or
   * dropped).
   *
   * @throws {DOMException} when `signal` aborts first.
   * @throws {Error} when the publisher closes first with messages left.
   */
  flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor(
      () => this.#queue.length === 0 && this.#inFlight.size === 0,
      "flush",
      options.signal,
    );
  }

  /**
   * Closes the publisher: ends active anomaly events (`shutdown`), queues `offline` on
   * `<prefix>/available`, waits up to `closeTimeoutMs` for the queue to drain, then
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
    this.#clearTimers();
    for (const event of this.#tracker.endAll("shutdown")) this.#enqueueEvent(event);
    this.#enqueue({
      topic: this.topics.available,
      payload: "offline",
      qos: this.#reliableQos,
      retain: true,
    });
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
    this.#droppedOther += left;
    if (left > 0) this.#log.warn("closing with unsent MQTT messages", { dropped: left });
    if (client !== undefined) this.#ending.add(endClient(client, !wasConnected));
    await Promise.all(this.#ending);
    this.#notify();
    this.#log.info("MQTT publisher closed", {
      published: this.#published,
      dropped: this.counters.dropped,
    });
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
  }

  #context(camera: string): CameraContext {
    let c = this.#cameras.get(camera);
    if (c === undefined) {
      c = { threshold: undefined, modelVersion: "", frames: 0, mapEligible: 0 };
      this.#cameras.set(camera, c);
    }
    return c;
  }

  #wantsMap(scored: ScoredFrame, context: CameraContext): boolean {
    const { everyN, onlyAnomalous } = this.#map;
    if (everyN === 0 || (onlyAnomalous && !scored.anomalous)) return false;
    return context.mapEligible++ % everyN === 0;
  }

  #enqueueMap(scored: ScoredFrame): void {
    const { frame } = scored;
    const { png, header } = encodeMapPng(scored.map, {
      camera: frame.camera,
      seq: frame.seq,
      capturedAt: frame.capturedAt,
      ...(this.#map.size !== undefined ? { size: this.#map.size } : {}),
    });
    this.#enqueue({
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
    });
  }

  #enqueueEvent(event: AnomalyEvent): void {
    const context = this.#context(event.camera);
    const { onThreshold, offThreshold } = this.#tracker.options;
    this.#enqueue({
      topic: this.topics.event(event.camera),
      payload: JSON.stringify(
        eventMessage(event, {
          onThreshold,
          offThreshold,
          threshold: context.threshold,
          modelVersion: context.modelVersion,
        }),
      ),
      qos: this.#reliableQos,
      retain: false,
      properties: JSON_PROPERTIES,
    });
  }

  #enqueueStatus(status: CameraStatus): void {
    this.#enqueue({
      topic: this.topics.status(status.camera),
      payload: JSON.stringify(statusMessage(status, this.#now())),
      qos: this.#reliableQos,
      retain: this.#retainStatus,
      properties: JSON_PROPERTIES,
    });
  }

  #tickStats(): void {
    const provider = this.#statsProvider;
    if (provider === undefined) return;
    try {
      this.publishStats(provider());
    } catch (e) {
      this.#warnOnce("stats-provider", "Cannot read pipeline status for stats", { error: e });
    }
  }

  #tickStatus(): void {
    if (this.#statsProvider !== undefined) {
      try {
        for (const s of this.#statsProvider().cameras) this.publishStatus(s);
      } catch (e) {
        this.#warnOnce("status-provider", "Cannot read pipeline status", { error: e });
      }
    }
    for (const s of this.#statuses.values()) this.#enqueueStatus(s);
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
      this.#attempt = 0;
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
      this.#queue.requeue([{
        topic: this.topics.available,
        payload: "online",
        qos: this.#reliableQos,
        retain: true,
      }]);
      this.#subscribeCommands(client);
      this.#drain();
      this.#notify();
    });
    client.on("message", (topic, payload, packet) => {
      if (this.#client !== client) return;
      this.#receive(topic, new Uint8Array(payload), packet.retain);
    });
    client.on("error", (e) => {
      if (this.#client !== client) return;
      const code = (e as { code?: unknown }).code;
      if (
        this.#protocolVersion === 5 && !this.#protocolFixed && !this.#connected &&
        (code === 1 || code === 132)
      ) {
        this.#protocolVersion = 4;
        this.#attempt = 0;
        this.#retryNow = true;
        this.#log.info("the MQTT broker refuses protocol 5: using MQTT 3.1.1", { url: this.url });
        return;
      }
      const first = this.#attempt === 0;
      const level = first || this.#attempt % 10 === 0 ? "warn" : "debug";
      this.#log[level](
        this.#connected ? "MQTT connection error" : "Cannot connect to MQTT broker",
        { url: this.url, error: this.#clean(e), attempt: this.#attempt + 1 },
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

  #subscribeCommands(client: MqttClient): void {
    if (this.#onCommand === undefined) return;
    const filter = this.topics.commandFilter;
    // MQTT 5: retain handling 2, the broker sends no retained command on subscribe.
    const options = this.#protocolVersion === 5 ? { qos: 1 as const, rh: 2 } : { qos: 1 as const };
    client.subscribe(filter, options, (error, granted) => {
      if (this.#client !== client) return;
      const refused = granted?.some((g) => g.qos === 128) ?? false;
      if ((error !== undefined && error !== null) || refused) {
        this.#log.warn("Cannot subscribe to MQTT commands", {
          topic: filter,
          error: error ? this.#clean(error) : "refused by the broker",
        });
      } else {
        this.#log.debug("subscribed to MQTT commands", { topic: filter });
      }
    });
  }

  #receive(topic: string, payload: Uint8Array, retained: boolean): void {
    const onCommand = this.#onCommand;
    const match = this.topics.matchCommand(topic);
    if (onCommand === undefined || match === undefined) return;
    if (retained) {
      this.#commandsRejected++;
      this.#log.warn("ignoring a retained MQTT command: publish commands without retain", {
        topic,
      });
      return;
    }
    let command: Command;
    try {
      command = parseCommand(match.camera, match.command, payload);
    } catch (e) {
      this.#commandsRejected++;
      this.#log.warn("ignoring a malformed MQTT command", {
        topic,
        error: this.#clean(e),
        payload: new TextDecoder().decode(payload.subarray(0, 200)),
      });
      return;
    }
    this.#commands++;
    this.#log.info("MQTT command", { topic, ...command });
    try {
      onCommand(command);
    } catch (e) {
      this.#log.warn("the MQTT command handler failed", { topic, error: this.#clean(e) });
    }
  }

  #scheduleReconnect(): void {
    if (this.#closing !== undefined || this.#reconnectTimer !== undefined) return;
    const base = Math.min(this.#reconnectMaxMs, this.#reconnectMinMs * 2 ** this.#attempt);
    const delay = this.#retryNow ? 0 : Math.round(base * (0.5 + Math.random() / 2));
    this.#retryNow = false;
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#log.debug("reconnecting to MQTT broker", { url: this.url, inMs: delay });
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  #requeueInFlight(client: MqttClient): void {
    const back: OutgoingMessage[] = [];
    for (const [id, entry] of [...this.#inFlight].sort((a, b) => a[0] - b[0])) {
      if (entry.client !== client) continue;
      this.#inFlight.delete(id);
      back.push(entry.message);
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
          this.#droppedOther++;
          this.#warnOnce(
            `refused:${message.topic}:${error.message}`,
            "the MQTT broker refused a message",
            {
              topic: message.topic,
              error: this.#clean(error),
            },
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
          reject(new Error(`Cannot ${what}: the MQTT publisher is closed`));
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
    return redact(e instanceof Error ? e.message : String(e), this.#secrets);
  }

  #warnOnce(key: string, message: string, fields: Record<string, unknown>): void {
    if (this.#warned.has(key)) return;
    if (this.#warned.size < 1000) this.#warned.add(key);
    const clean = Object.fromEntries(
      Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? this.#clean(v) : v]),
    );
    this.#log.warn(message, clean);
  }
}

const JSON_PROPERTIES: OutgoingProperties = {
  contentType: "application/json",
  payloadFormatIndicator: true,
};

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function positiveInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`Cannot use ${name} ${v}: expected a positive integer`);
  }
  return v;
}

function readTls(tls: TlsFileOptions | undefined): Partial<IClientOptions> {
  if (tls === undefined) return {};
  const read = (what: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(
        `Cannot read MQTT TLS ${what} file ${path}: ${e instanceof Error ? e.message : e}`,
        { cause: e },
      );
    }
  };
  return {
    ...(tls.ca !== undefined ? { ca: read("CA", tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: read("certificate", tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: read("key", tls.key) } : {}),
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
  };
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
