/**
 * The MQTT publisher: scored frames, camera status, anomaly events, model lifecycle steps
 * and statistics out to a broker, under the topic tree of `topics.ts` (all described in
 * `docs/mqtt.md`). It decides what goes out and when: the map cadence, the anomaly events
 * (`events.ts`), the periodic `stats` and `status` messages. The messages are built by
 * `messages.ts` and sent by an {@linkcode MqttConnection} (`connection.ts`: queueing,
 * in-flight window, reconnects and their backpressure policy); commands in are received by
 * a {@linkcode CommandReceiver} (`command_receiver.ts`).
 *
 * Backpressure policy: publishing never blocks and never throws; the connection's bounded
 * queue drops the oldest QoS 0 message (else the oldest) when full, and counts it. A
 * message that cannot be built (a bad camera name, a map that cannot be encoded) is logged
 * once and counted as dropped.
 *
 * @module
 */
import { assertNonNegativeInteger, assertPositiveInteger } from "../core/check.ts";
import { errorMessage } from "../core/errors.ts";
import type { CameraStatus, Precision, ScoredFrame } from "../core/frame.ts";
import { createLogger, type Logger } from "../core/log.ts";
import type { PipelineStatus } from "../core/status.ts";
import { type CommandCounters, CommandReceiver } from "./command_receiver.ts";
import type { Command } from "./commands.ts";
import { CONNECTION_SETTINGS, type ConnectionSettings, MqttConnection } from "./connection.ts";
import { type AnomalyEvent, type EventRules, EventTracker } from "./events.ts";
import { MessageBuilder } from "./messages.ts";
import { type ModelUpdate, statsMessage, type StatsSample } from "./payloads.ts";
import type { OutgoingMessage } from "./queue.ts";
import { checkCameraName, type Topics, topics } from "./topics.ts";
import { WarnOnce } from "./warn_once.ts";

export type { CommandCounters } from "./command_receiver.ts";
export type { TlsFileOptions } from "./tls_files.ts";

/**
 * Options of the `<prefix>/<camera>/map` topic (a pipeline's resolved `mqtt.map`).
 * Cadence: a frame is eligible when `onlyAnomalous` is off or the frame is anomalous; of a
 * camera's eligible frames, the 1st, (N+1)th, (2N+1)th ... are published (N = `everyN`).
 */
export interface MapPublishOptions {
  /** Publish every Nth eligible frame's map; 1 = every one, 0 = never. */
  readonly everyN: number;
  /** Only anomalous frames are eligible. */
  readonly onlyAnomalous: boolean;
  /** PNG width; without `width` and `height`, the map's own size. */
  readonly width?: number;
  /** PNG height; without `width` and `height`, the map's own size. */
  readonly height?: number;
}

/**
 * Options of {@linkcode MqttPublisher}. What a pipeline file sets is required here: the
 * pipeline passes its resolved `mqtt` section, whose defaults are in `config/defaults.ts`.
 * The rest (protocol, in-flight window, timings) has the defaults of this stage.
 */
export interface MqttPublisherOptions extends ConnectionSettings {
  /** Topic prefix. */
  readonly prefix: string;
  /** QoS of `score`, `map` and `stats`. `event`, `status` and `available` use `max(qos, 1)`. */
  readonly qos: 0 | 1 | 2;
  /** Retain `status` messages. */
  readonly retainStatus: boolean;
  readonly map: MapPublishOptions;
  readonly events: EventRules;
  /** Period of `<prefix>/stats`, ms; 0 disables it. Needs `stats`. */
  readonly statsIntervalMs: number;
  /** Period of re-publishing every camera's `status`, ms; 0 disables it. Default 30 000. */
  readonly statusIntervalMs?: number;
  /** Where periodic stats (and camera statuses) come from. */
  readonly stats?: () => PipelineStatus;
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

interface CameraContext {
  threshold: number | undefined;
  modelVersion: string;
  modelPrecision: Precision;
  frames: number;
  /** Frames eligible for a map so far. */
  mapEligible: number;
}

/**
 * Publishes the service's output to an MQTT broker (see the module doc for the queueing
 * policy). Connecting starts at construction; nothing waits for it.
 *
 * @example
 * ```ts
 * import type { ScoredFrame } from "../core/frame.ts";
 *
 * // `options`: a pipeline's resolved `mqtt` section, as `pipeline/pipeline.ts` passes it.
 * async function publishAll(
 *   scored: ReadableStream<ScoredFrame>,
 *   options: MqttPublisherOptions,
 *   signal: AbortSignal,
 * ) {
 *   await using publisher = new MqttPublisher({ ...options, signal });
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
  readonly #log: Logger;
  readonly #warn: WarnOnce;
  readonly #now: () => number;
  readonly #build: MessageBuilder;
  readonly #connection: MqttConnection;
  readonly #commands: CommandReceiver | undefined;
  readonly #map: { readonly everyN: number; readonly onlyAnomalous: boolean };
  readonly #tracker: EventTracker;
  readonly #statsProvider: (() => PipelineStatus) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #cameras = new Map<string, CameraContext>();
  readonly #statuses = new Map<string, CameraStatus>();
  #dropped = 0;
  #lastStats: StatsSample | undefined;
  #closing: Promise<void> | undefined;
  #writable: WritableStream<ScoredFrame> | undefined;

  /**
   * Makes the publisher and starts connecting.
   *
   * @throws {RangeError} when the URL, prefix, QoS, limits, map size or event thresholds
   * are invalid.
   * @throws {Error} when a TLS file cannot be read ("Cannot read MQTT TLS ... file").
   */
  constructor(options: MqttPublisherOptions) {
    // Everything is checked before the connection starts, so a throw leaks no socket.
    this.topics = topics(options.prefix);
    this.clientId = options.clientId;
    this.#log = options.logger ?? createLogger({ scope: "mqtt" });
    this.#now = options.now ?? Date.now;
    const qos = options.qos;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new RangeError(`Cannot use MQTT QoS ${qos}: expected 0, 1 or 2`);
    }
    const map = options.map;
    const everyN = assertNonNegativeInteger(map.everyN, "every N", "Cannot publish maps");
    if ((map.width === undefined) !== (map.height === undefined)) {
      throw new RangeError("Cannot publish maps: give both width and height, or neither");
    }
    this.#map = { everyN, onlyAnomalous: map.onlyAnomalous };
    this.#build = new MessageBuilder({
      topics: this.topics,
      qos,
      retainStatus: options.retainStatus,
      ...(map.width !== undefined && map.height !== undefined
        ? {
          mapSize: [
            assertPositiveInteger(map.height, "map height", "Cannot publish maps"),
            assertPositiveInteger(map.width, "map width", "Cannot publish maps"),
          ],
        }
        : {}),
    });
    this.#tracker = new EventTracker(options.events);
    this.#statsProvider = options.stats;
    this.#signal = options.signal;
    const offline = this.#build.available("offline");
    this.#connection = new MqttConnection({
      ...pick(options, CONNECTION_SETTINGS),
      will: { topic: offline.topic, payload: "offline", qos: offline.qos, retain: true },
      birth: this.#build.available("online"),
      logger: this.#log,
      // An already aborted signal: the connection never starts. A later abort goes through
      // close(), which queues the shutdown events and `offline` before the connection ends.
      ...(this.#signal?.aborted ? { signal: this.#signal } : {}),
    });
    this.url = this.#connection.url;
    this.#warn = new WarnOnce(this.#log, (text) => this.#connection.redact(text));
    if (options.onCommand !== undefined) {
      this.#commands = new CommandReceiver({
        topics: this.topics,
        onCommand: options.onCommand,
        logger: this.#log,
        redact: (text) => this.#connection.redact(text),
      });
      this.#connection.subscribe(this.#commands.subscription);
    }
    if (this.#signal?.aborted) {
      this.#closing = Promise.resolve();
      return;
    }
    const statsMs = options.statsIntervalMs;
    if (statsMs > 0 && this.#statsProvider !== undefined) {
      this.#timers.push(setInterval(() => this.#tickStats(), statsMs));
    }
    const statusMs = options.statusIntervalMs ?? 30_000;
    if (statusMs > 0) this.#timers.push(setInterval(() => this.#tickStatus(), statusMs));
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Whether a broker connection is up. */
  get connected(): boolean {
    return this.#connection.connected;
  }

  /** The publisher's counters. */
  get counters(): PublisherCounters {
    const c = this.#connection.counters;
    return { ...c, dropped: c.dropped + this.#dropped };
  }

  /** Counts of the commands in. */
  get commandCounters(): CommandCounters {
    return this.#commands?.counters ?? { received: 0, rejected: 0 };
  }

  /** The MQTT protocol version in use (5, or 4 after a fallback). */
  get protocolVersion(): 4 | 5 {
    return this.#connection.protocolVersion;
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
      context.modelPrecision = scored.modelPrecision ?? "fp32";
      context.frames++;
      this.#send(this.#build.score(scored, now));
      if (this.#wantsMap(scored, context)) this.#send(this.#build.map(scored));
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
      if (event !== undefined) this.#sendEvent(event);
    } catch (e) {
      this.#dropped++;
      this.#warn.warn(`frame:${errorMessage(e)}`, "Cannot publish frame", {
        camera: frame.camera,
        seq: frame.seq,
        error: e,
      });
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
        if (event !== undefined) this.#sendEvent(event);
      }
      if (
        before === undefined || before.state !== status.state ||
        before.lastError !== status.lastError
      ) {
        this.#send(this.#build.status(status, this.#now()));
      }
    } catch (e) {
      this.#dropped++;
      this.#warn.warn(`status:${status.camera}`, "Cannot publish status", {
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
   * function reportTraining(publisher: MqttPublisher) {
   *   publisher.publishModel("line-1", {
   *     key: "line-1",
   *     at: Date.now(),
   *     state: "training",
   *     serving: "efficientad-s@3",
   *     trigger: "drift",
   *     progress: { step: 400, total: 2000, loss: 0.0123, etaMs: 95_000 },
   *   });
   * }
   * ```
   */
  publishModel(camera: string, update: ModelUpdate): void {
    if (this.#closing !== undefined) return;
    try {
      this.#send(this.#build.model(camera, update, this.#now()));
    } catch (e) {
      this.#dropped++;
      this.#warn.warn(`model:${camera}`, "Cannot publish model state", { camera, error: e });
    }
  }

  /**
   * Queues a `<prefix>/stats` message built from `status` (the `mqtt` counters are the
   * publisher's own). Rates are computed against the previous stats message. Never throws.
   */
  publishStats(status: PipelineStatus): void {
    if (this.#closing !== undefined) return;
    try {
      const sample: StatsSample = {
        at: this.#now(),
        status: { ...status, mqtt: { ...status.mqtt, ...this.counters } },
        scored: new Map([...this.#cameras].map(([camera, c]) => [camera, c.frames])),
      };
      const message = statsMessage(sample, this.#lastStats);
      this.#lastStats = sample;
      this.#send(this.#build.stats(message));
    } catch (e) {
      this.#dropped++;
      this.#warn.warn("stats", "Cannot publish stats", { error: e });
    }
  }

  /**
   * Resolves once a broker connection is up.
   *
   * @throws {DOMException} (`AbortError` / `TimeoutError`) when `signal` aborts first.
   * @throws {Error} when the publisher closes first.
   */
  waitConnected(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#connection.waitConnected(options);
  }

  /**
   * Resolves once nothing waits or is in flight (every queued message was published or
   * dropped).
   *
   * @throws {DOMException} when `signal` aborts first.
   * @throws {Error} when the publisher closes first with messages left.
   */
  flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#connection.flush(options);
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
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
    for (const event of this.#tracker.endAll("shutdown")) this.#sendEvent(event);
    this.#send(this.#build.available("offline"));
    await this.#connection.close();
    this.#log.info("MQTT publisher closed", {
      published: this.counters.published,
      dropped: this.counters.dropped,
    });
  }

  #send(message: OutgoingMessage): void {
    this.#connection.publish(message);
  }

  #context(camera: string): CameraContext {
    let c = this.#cameras.get(camera);
    if (c === undefined) {
      c = {
        threshold: undefined,
        modelVersion: "",
        modelPrecision: "fp32",
        frames: 0,
        mapEligible: 0,
      };
      this.#cameras.set(camera, c);
    }
    return c;
  }

  #wantsMap(scored: ScoredFrame, context: CameraContext): boolean {
    const { everyN, onlyAnomalous } = this.#map;
    if (everyN === 0 || (onlyAnomalous && !scored.anomalous)) return false;
    return context.mapEligible++ % everyN === 0;
  }

  #sendEvent(event: AnomalyEvent): void {
    const context = this.#context(event.camera);
    const { onThreshold, offThreshold } = this.#tracker.options;
    this.#send(this.#build.event(event, {
      onThreshold,
      offThreshold,
      threshold: context.threshold,
      modelVersion: context.modelVersion,
      modelPrecision: context.modelPrecision,
    }));
  }

  #tickStats(): void {
    const provider = this.#statsProvider;
    if (provider === undefined) return;
    try {
      this.publishStats(provider());
    } catch (e) {
      this.#warn.warn("stats-provider", "Cannot read pipeline status for stats", { error: e });
    }
  }

  #tickStatus(): void {
    if (this.#statsProvider !== undefined) {
      try {
        for (const s of this.#statsProvider().cameras) this.publishStatus(s);
      } catch (e) {
        this.#warn.warn("status-provider", "Cannot read pipeline status", { error: e });
      }
    }
    const now = this.#now();
    for (const s of this.#statuses.values()) this.#send(this.#build.status(s, now));
  }
}

/** The keys of `options` among `keys` whose values are set. */
function pick<T extends object, K extends keyof T>(options: T, keys: readonly K[]): Pick<T, K> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (options[k] !== undefined) out[k] = options[k];
  return out as Pick<T, K>;
}
