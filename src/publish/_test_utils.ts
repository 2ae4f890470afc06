/**
 * Test helpers for this folder's tests: the options a pipeline file's defaults resolve to
 * (from `config/defaults.ts`, the one place of those defaults), synthetic scored frames, a
 * deadline, a capturing logger and a publisher with test-friendly timings. (The MQTT
 * subscriber that tests use is `tests/support/mqtt_subscriber.ts`.)
 *
 * @module
 */
import type { Precision, ScoredFrame } from "../core/frame.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { EventRules } from "./events.ts";
import { type MapPublishOptions, MqttPublisher, type MqttPublisherOptions } from "./publisher.ts";

/** The event rules that a pipeline file's defaults resolve to. */
export const DEFAULT_EVENT_RULES: EventRules = {
  onThreshold: DEFAULTS.mqtt.events.on_threshold,
  offThreshold: DEFAULTS.mqtt.events.off_threshold,
  minDurationMs: DEFAULTS.mqtt.events.min_duration_ms,
  updateIntervalMs: DEFAULTS.mqtt.events.update_interval_ms,
};

/** Whether a TLS connection checks the broker's certificate, by a pipeline file's default. */
export const DEFAULT_REJECT_UNAUTHORIZED: boolean = DEFAULTS.mqtt.reject_unauthorized;

/** The default topic prefix of a pipeline file. */
export const DEFAULT_PREFIX: string = DEFAULTS.mqtt.topic_prefix;

/** The default queue limit of a pipeline file. */
export const DEFAULT_QUEUE_LIMIT: number = DEFAULTS.mqtt.queue_limit;

/** {@linkcode MqttPublisherOptions} for a test: any of them, `map` and `events` in part. */
export type TestPublisherOptions =
  & Omit<Partial<MqttPublisherOptions>, "map" | "events">
  & {
    readonly map?: Partial<MapPublishOptions>;
    readonly events?: Partial<EventRules>;
  };

/**
 * The publisher options that a pipeline file's defaults resolve to (with a fresh client id
 * each call, so that publishers of one test do not take each other's session), and
 * `options` over them (`map` and `events` merged).
 */
export function publisherOptions(
  url: string,
  options: TestPublisherOptions = {},
): MqttPublisherOptions {
  const q = DEFAULTS.mqtt;
  return {
    clientId: `${q.client_id_prefix}${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`,
    prefix: DEFAULT_PREFIX,
    qos: q.qos,
    retainStatus: q.retain_status,
    queueLimit: DEFAULT_QUEUE_LIMIT,
    statsIntervalMs: q.stats_interval_ms,
    ...options,
    url,
    map: { everyN: q.map.every_n, onlyAnomalous: q.map.only_anomalous, ...options.map },
    events: { ...DEFAULT_EVENT_RULES, ...options.events },
  };
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
  /** Absent: the frame says nothing (fp32). */
  readonly modelPrecision?: Precision;
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
    ...(options.modelPrecision !== undefined ? { modelPrecision: options.modelPrecision } : {}),
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

/**
 * A publisher with the pipeline defaults ({@linkcode publisherOptions}) and test-friendly
 * timings (fast reconnects, no periodic messages).
 */
export function testPublisher(url: string, options: TestPublisherOptions = {}): MqttPublisher {
  return new MqttPublisher(publisherOptions(url, {
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    connectTimeoutMs: 2000,
    statsIntervalMs: 0,
    statusIntervalMs: 0,
    logger: captureLog().logger,
    ...options,
  }));
}
