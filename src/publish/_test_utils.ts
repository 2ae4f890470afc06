/**
 * Test helpers for this folder's tests: synthetic scored frames, a deadline, a capturing
 * logger and a publisher with test-friendly timings. (The MQTT subscriber that tests use
 * is `tests/support/mqtt_subscriber.ts`.)
 *
 * @module
 */
import type { ScoredFrame } from "../core/frame.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { MqttPublisher, type MqttPublisherOptions } from "./publisher.ts";

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
