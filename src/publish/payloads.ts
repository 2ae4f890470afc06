/**
 * The JSON payloads of the MQTT topics, version 1. Keys are snake_case; every message
 * carries `"v": 1`; a value that is not known is `null` rather than absent, so consumers
 * see a fixed set of keys. Times are given both as ISO 8601 strings (UTC) and as epoch
 * milliseconds (`*_ms`).
 *
 * A future incompatible change bumps `v`; adding keys does not.
 *
 * @module
 */
import type { CameraState, CameraStatus, Precision, ScoredFrame } from "../core/frame.ts";
import { redact } from "../core/redact.ts";
import {
  CANCELLED_REASON,
  candidateOf,
  type ModelFigures,
  type ModelState,
  type RetrainEvent,
  type RetrainTrigger,
} from "../core/retrain_event.ts";
import type { Percentiles, PipelineStatus } from "../core/status.ts";
import type { AnomalyEndReason, AnomalyEvent, AnomalyEventType } from "./events.ts";

/** The payload schema version. */
export const SCHEMA_VERSION = 1;

/** `<prefix>/<camera>/score`: one per processed frame. */
export interface ScoreMessage {
  readonly v: 1;
  readonly camera: string;
  /** The frame's per-camera sequence number. */
  readonly seq: number;
  /** Capture time (ISO 8601, UTC). */
  readonly captured_at: string;
  /** Capture time, epoch milliseconds. */
  readonly captured_at_ms: number;
  /** Raw score: the anomaly map's maximum, in the model's units. */
  readonly score: number;
  /** Raw-score threshold in force (same units as `score`), or null when the model has none. */
  readonly threshold: number | null;
  /** Normalised score in [0, 1] (anomalib's min-max normalisation: 0.5 = threshold), or null. */
  readonly normalized_score: number | null;
  /** Whether the frame is anomalous under the threshold policy. */
  readonly anomalous: boolean;
  readonly model_version: string;
  /** The precision of the graph that scored it: `fp32`, `fp16` or `int8` (own thresholds). */
  readonly model_precision: Precision;
  /** Milliseconds from capture to the moment this message was built for publishing. */
  readonly latency_ms: number;
  /** How many frames the inference batch held. */
  readonly batch_size: number;
  /** Milliseconds the engine took for the whole batch. */
  readonly inference_ms: number;
}

/** `<prefix>/<camera>/status`: retained. */
export interface StatusMessage {
  readonly v: 1;
  /** When this message was built (ISO 8601). */
  readonly time: string;
  readonly time_ms: number;
  readonly camera: string;
  readonly state: CameraState;
  readonly frames_in: number;
  readonly frames_dropped: number;
  readonly reconnects: number;
  readonly stalls: number;
  /** Capture time of the last frame (ISO 8601), or null. */
  readonly last_frame_at: string | null;
  readonly last_frame_at_ms: number | null;
  /** The last error, credentials redacted, or null. */
  readonly last_error: string | null;
}

/** `<prefix>/<camera>/event`. */
export interface EventMessage {
  readonly v: 1;
  readonly type: AnomalyEventType;
  /** The same for one anomaly's start, updates and end (a UUID). */
  readonly event_id: string;
  readonly camera: string;
  /** Sequence number of the anomaly's first frame. */
  readonly start_seq: number;
  /** Sequence number of its latest frame so far (on `end`: its last frame). */
  readonly last_seq: number;
  /** On `end`: the anomaly's last frame (= `last_seq`); null before. */
  readonly end_seq: number | null;
  readonly started_at: string;
  readonly started_at_ms: number;
  /** On `end`: capture time of the last frame; null before. */
  readonly ended_at: string | null;
  readonly ended_at_ms: number | null;
  /** From the first frame's capture to the latest (last) one's, milliseconds. */
  readonly duration_ms: number;
  /** Highest raw score of the anomaly so far. */
  readonly peak_score: number;
  /** Highest normalised score so far, or null when the model has no thresholds. */
  readonly peak_normalized_score: number | null;
  readonly peak_seq: number;
  /** Frames counted in the anomaly so far. */
  readonly frames: number;
  /** On `end`: `cleared`, `stream_lost` or `shutdown`; null before. */
  readonly reason: AnomalyEndReason | null;
  /** Normalised-score levels of the hysteresis. */
  readonly on_threshold: number;
  readonly off_threshold: number;
  /** Raw-score threshold of the model, or null. */
  readonly threshold: number | null;
  readonly model_version: string;
  /** The precision of the graph whose scores the event tracked. */
  readonly model_precision: Precision;
}

export type { ModelState, RetrainTrigger };

/**
 * One step of the retraining lifecycle, as `src/retrain` reports it: the lifecycle union
 * itself ({@linkcode RetrainEvent}), under the name the publisher takes.
 */
export type ModelUpdate = RetrainEvent;

/** Validation figures of one model, in `<prefix>/<camera>/model`. */
export interface ModelFiguresMessage {
  readonly flagged_share: number;
  readonly median_normalized_score: number;
  readonly detected_share: number | null;
  readonly auroc: number | null;
}

/** `<prefix>/<camera>/model`: retained, one per lifecycle step. */
export interface ModelMessage {
  readonly v: 1;
  readonly time: string;
  readonly time_ms: number;
  readonly camera: string;
  readonly state: ModelState;
  readonly model_version: string | null;
  readonly candidate_version: string | null;
  readonly trigger: RetrainTrigger | null;
  readonly trigger_reason: string | null;
  readonly collecting: {
    readonly frames: number;
    readonly needed: number;
    readonly bootstrap: boolean;
  } | null;
  readonly training: {
    readonly step: number;
    readonly total: number;
    readonly loss: number | null;
    readonly eta_s: number | null;
  } | null;
  readonly validation: {
    readonly normal_frames: number;
    readonly anomalous_frames: number;
    readonly candidate: ModelFiguresMessage;
    readonly current: ModelFiguresMessage | null;
  } | null;
  readonly decision_reason: string | null;
  readonly store_error: string | null;
}

/** Latency percentiles, milliseconds. */
export interface PercentilesMessage {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly count: number;
}

/** One camera in `<prefix>/stats`. */
export interface CameraStatsMessage {
  readonly camera: string;
  readonly state: CameraState;
  /** Frames read per second since the previous stats message, or null on the first. */
  readonly fps_in: number | null;
  /** Frames scored (published) per second since the previous stats message, or null. */
  readonly fps_scored: number | null;
  readonly frames_in: number;
  readonly frames_dropped: number;
  readonly frames_scored: number;
  readonly reconnects: number;
  readonly stalls: number;
}

/** `<prefix>/stats`: periodic pipeline statistics. */
export interface StatsMessage {
  readonly v: 1;
  readonly time: string;
  readonly time_ms: number;
  readonly uptime_s: number;
  readonly model: {
    readonly version: string;
    readonly engine: string;
    /** The precision the default model serves. */
    readonly precision: Precision;
    readonly untrained: boolean;
  };
  readonly cameras: readonly CameraStatsMessage[];
  readonly inference: {
    readonly batches: number;
    readonly frames: number;
    readonly mean_batch_size: number;
    readonly batch_ms: PercentilesMessage;
    readonly capture_to_publish_ms: PercentilesMessage;
  };
  readonly mqtt: {
    readonly connected: boolean;
    readonly queued: number;
    readonly published: number;
    readonly dropped: number;
  };
}

/** Options of the event payload: what the tracker does not know. */
export interface EventContext {
  readonly onThreshold: number;
  readonly offThreshold: number;
  readonly threshold: number | undefined;
  readonly modelVersion: string;
  /** Absent = `fp32`. */
  readonly modelPrecision?: Precision;
}

/** One stats sample: the pipeline's status and per-camera scored-frame counts at a time. */
export interface StatsSample {
  /** Epoch milliseconds. */
  readonly at: number;
  readonly status: PipelineStatus;
  /** Frames scored per camera since start. */
  readonly scored: ReadonlyMap<string, number>;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Builds the `score` payload of a scored frame; `now` is the publish time (epoch ms). */
export function scoreMessage(scored: ScoredFrame, now: number): ScoreMessage {
  const { frame } = scored;
  return {
    v: 1,
    camera: frame.camera,
    seq: frame.seq,
    captured_at: iso(frame.capturedAt),
    captured_at_ms: frame.capturedAt,
    score: scored.score,
    threshold: scored.threshold ?? null,
    normalized_score: scored.normalizedScore ?? null,
    anomalous: scored.anomalous,
    model_version: scored.modelVersion,
    model_precision: scored.modelPrecision ?? "fp32",
    latency_ms: round(now - frame.capturedAt, 3),
    batch_size: scored.batchSize,
    inference_ms: round(scored.inferenceMs, 3),
  };
}

/** Builds the `status` payload of a camera; `now` is the message time (epoch ms). */
export function statusMessage(status: CameraStatus, now: number): StatusMessage {
  return {
    v: 1,
    time: iso(now),
    time_ms: now,
    camera: status.camera,
    state: status.state,
    frames_in: status.framesIn,
    frames_dropped: status.framesDropped,
    reconnects: status.reconnects,
    stalls: status.stalls,
    last_frame_at: status.lastFrameAt !== undefined ? iso(status.lastFrameAt) : null,
    last_frame_at_ms: status.lastFrameAt ?? null,
    last_error: status.lastError !== undefined ? redact(status.lastError) : null,
  };
}

/** Builds the `event` payload of a tracker event. */
export function eventMessage(event: AnomalyEvent, context: EventContext): EventMessage {
  const ended = event.type === "end";
  return {
    v: 1,
    type: event.type,
    event_id: event.id,
    camera: event.camera,
    start_seq: event.startSeq,
    last_seq: event.lastSeq,
    end_seq: ended ? event.lastSeq : null,
    started_at: iso(event.startedAt),
    started_at_ms: event.startedAt,
    ended_at: ended ? iso(event.lastAt) : null,
    ended_at_ms: ended ? event.lastAt : null,
    duration_ms: event.durationMs,
    peak_score: event.peakScore,
    peak_normalized_score: event.peakNormalizedScore ?? null,
    peak_seq: event.peakSeq,
    frames: event.frames,
    reason: event.reason ?? null,
    on_threshold: context.onThreshold,
    off_threshold: context.offThreshold,
    threshold: context.threshold ?? null,
    model_version: context.modelVersion,
    model_precision: context.modelPrecision ?? "fp32",
  };
}

function figures(f: ModelFigures): ModelFiguresMessage {
  return {
    flagged_share: round(f.flaggedFraction, 4),
    median_normalized_score: round(f.medianNormalized, 4),
    detected_share: f.detectedFraction !== undefined ? round(f.detectedFraction, 4) : null,
    auroc: f.auroc !== undefined ? round(f.auroc, 4) : null,
  };
}

/**
 * Builds the `model` payload of a camera's lifecycle step: the one place where a
 * {@linkcode RetrainEvent} becomes the wire form (schema v1, `docs/mqtt.md`). The message's
 * time is the event's `at`; `_publishedAt` (the publish time) is not used.
 * `collecting.bootstrap` is true when the key has no model yet (no `serving`).
 *
 * @example
 * ```ts
 * modelMessage("line-1", { state: "collecting", key: "line-1", at: Date.now(),
 *   trigger: "bootstrap", collected: 120, needed: 500 });
 * ```
 */
export function modelMessage(
  camera: string,
  event: ModelUpdate,
  _publishedAt?: number,
): ModelMessage {
  const { at } = event;
  const progress = event.state === "training" ? event.progress : undefined;
  const validation = event.state === "promoted" || event.state === "refused"
    ? event.validation
    : undefined;
  const decision = event.state === "idle"
    ? (event.cancelled ? CANCELLED_REASON : undefined)
    : event.state === "promoted" || event.state === "refused" || event.state === "rolled_back" ||
        event.state === "failed"
    ? event.decisionReason
    : undefined;
  const trigger = event.state === "idle" ? undefined : event.trigger;
  const triggerReason = event.state === "idle" ? undefined : event.triggerReason;
  return {
    v: 1,
    time: iso(at),
    time_ms: at,
    camera,
    state: event.state,
    model_version: event.serving ?? null,
    candidate_version: candidateOf(event) ?? null,
    trigger: trigger ?? null,
    trigger_reason: triggerReason ?? null,
    collecting: event.state === "collecting"
      ? {
        frames: event.collected,
        needed: event.needed,
        bootstrap: event.serving === undefined,
      }
      : null,
    training: progress !== undefined
      ? {
        step: progress.step,
        total: progress.total,
        loss: progress.loss !== undefined ? round(progress.loss, 6) : null,
        eta_s: progress.etaMs !== undefined ? round(progress.etaMs / 1000, 1) : null,
      }
      : null,
    validation: validation !== undefined
      ? {
        normal_frames: validation.candidate.normalFrames,
        anomalous_frames: validation.candidate.anomalousFrames,
        candidate: figures(validation.candidate),
        current: validation.current !== undefined ? figures(validation.current) : null,
      }
      : null,
    decision_reason: decision ?? null,
    store_error: event.storeError ?? null,
  };
}

function percentiles(p: Percentiles): PercentilesMessage {
  return { p50: round(p.p50, 3), p95: round(p.p95, 3), p99: round(p.p99, 3), count: p.count };
}

/**
 * Builds the `stats` payload; rates (frames per second) are computed against `previous`
 * and are null without it.
 */
export function statsMessage(current: StatsSample, previous?: StatsSample): StatsMessage {
  const { status, at } = current;
  const seconds = previous !== undefined ? (at - previous.at) / 1000 : 0;
  const rate = (now: number, before: number | undefined): number | null =>
    seconds > 0 && before !== undefined ? round(Math.max(0, now - before) / seconds, 2) : null;
  const before = new Map(previous?.status.cameras.map((c) => [c.camera, c]) ?? []);
  return {
    v: 1,
    time: iso(at),
    time_ms: at,
    uptime_s: round((at - status.startedAt) / 1000, 1),
    model: {
      version: status.model.version,
      engine: status.model.engine,
      precision: status.model.precision ?? "fp32",
      untrained: status.model.untrained,
    },
    cameras: status.cameras.map((c) => {
      const scored = current.scored.get(c.camera) ?? 0;
      return {
        camera: c.camera,
        state: c.state,
        fps_in: rate(c.framesIn, before.get(c.camera)?.framesIn),
        fps_scored: rate(scored, previous?.scored.get(c.camera) ?? (previous ? 0 : undefined)),
        frames_in: c.framesIn,
        frames_dropped: c.framesDropped,
        frames_scored: scored,
        reconnects: c.reconnects,
        stalls: c.stalls,
      };
    }),
    inference: {
      batches: status.inference.batches,
      frames: status.inference.frames,
      mean_batch_size: round(status.inference.meanBatchSize, 3),
      batch_ms: percentiles(status.inference.batchMs),
      capture_to_publish_ms: percentiles(status.inference.captureToPublishMs),
    },
    mqtt: {
      connected: status.mqtt.connected,
      queued: status.mqtt.queued,
      published: status.mqtt.published,
      dropped: status.mqtt.dropped,
    },
  };
}
