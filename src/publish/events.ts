/**
 * Anomaly events from a stream of scores: hysteresis, a minimum duration and periodic
 * updates, so that one noisy frame raises nothing and a flickering score raises one event.
 *
 * Per camera, the tracker is idle, pending or active:
 *
 * - idle -> pending when a frame's level reaches `onThreshold`;
 * - pending -> active once the anomaly has lasted `minDurationMs` (from its first frame's
 *   capture time to the current one's): the `start` event is emitted then, carrying the
 *   first frame's sequence number and time;
 * - pending -> idle, silently, when the level falls below `offThreshold` first;
 * - active: an `update` every `updateIntervalMs` (capture time), and an `end` when the
 *   level falls below `offThreshold` (or the stream is lost, or the service stops).
 *
 * Between the two thresholds the state does not change (hysteresis). The level is the
 * frame's normalised score, or 1 / 0 from its `anomalous` flag when the model has no
 * thresholds (then there is no hysteresis, only the minimum duration).
 *
 * Time comes only from the samples' capture timestamps, so tests need no clock.
 *
 * @module
 */

/**
 * When anomaly events begin, last and end: a pipeline's resolved `mqtt.events` (its
 * defaults are in `config/defaults.ts`).
 */
export interface EventRules {
  /** Level at or above which an anomaly begins, on the normalised scale (0.5 = the model's threshold). */
  readonly onThreshold: number;
  /** Level below which an anomaly ends; at most `onThreshold`. */
  readonly offThreshold: number;
  /** How long an anomaly must last before `start` is emitted, in milliseconds of capture time. */
  readonly minDurationMs: number;
  /** Interval of `update` events while an anomaly lasts, in milliseconds; 0 disables them. */
  readonly updateIntervalMs: number;
}

/** Options of {@linkcode EventTracker}: its rules, and how event ids are made. */
export interface EventTrackerOptions extends EventRules {
  /** Makes event ids. Default `crypto.randomUUID`. */
  readonly newId?: () => string;
}

/** What the tracker needs of a scored frame. */
export interface EventSample {
  readonly camera: string;
  readonly seq: number;
  /** Capture time, epoch milliseconds. */
  readonly at: number;
  /** The raw score. */
  readonly score: number;
  /** The normalised score, when the model has thresholds. */
  readonly normalizedScore?: number;
  /** The frame's anomalous flag (the level when there is no normalised score). */
  readonly anomalous: boolean;
}

/** The kinds of anomaly event. */
export type AnomalyEventType = "start" | "update" | "end";

/** Why an event ended: the score cleared, the camera's stream was lost, or the service stopped. */
export type AnomalyEndReason = "cleared" | "stream_lost" | "shutdown";

/** One anomaly event, as the tracker emits it. */
export interface AnomalyEvent {
  readonly type: AnomalyEventType;
  /** The same for the start, updates and end of one anomaly. */
  readonly id: string;
  readonly camera: string;
  /** Sequence number of the anomaly's first frame (the first at or above `onThreshold`). */
  readonly startSeq: number;
  /** Sequence number of its latest frame at or above `offThreshold`; on `end`, its last frame. */
  readonly lastSeq: number;
  /** Capture time of the first frame (epoch ms). */
  readonly startedAt: number;
  /** Capture time of the latest frame counted in the anomaly (epoch ms). */
  readonly lastAt: number;
  /** `lastAt - startedAt`. */
  readonly durationMs: number;
  /** Highest raw score so far. */
  readonly peakScore: number;
  /** Highest normalised score so far, when the model has thresholds. */
  readonly peakNormalizedScore?: number;
  /** Sequence number of the frame with the highest level (then raw score). */
  readonly peakSeq: number;
  /** Frames counted in the anomaly so far. */
  readonly frames: number;
  /** On `end` only. */
  readonly reason?: AnomalyEndReason;
}

interface Anomaly {
  id: string;
  active: boolean;
  startSeq: number;
  lastSeq: number;
  startedAt: number;
  lastAt: number;
  peakLevel: number;
  peakScore: number;
  peakNormalizedScore: number | undefined;
  peakSeq: number;
  frames: number;
  lastEmittedAt: number;
}

/**
 * Turns per-frame scores into `start` / `update` / `end` events, per camera.
 *
 * @example
 * ```ts
 * const tracker = new EventTracker({
 *   onThreshold: 0.5,
 *   offThreshold: 0.4,
 *   minDurationMs: 200,
 *   updateIntervalMs: 1000,
 * });
 * const samples: EventSample[] = [
 *   { camera: "line-1", seq: 0, at: 0, score: 2.1, anomalous: true },
 *   { camera: "line-1", seq: 1, at: 300, score: 2.3, anomalous: true },
 * ];
 * for (const s of samples) {
 *   const event = tracker.observe(s);
 *   if (event) console.log(event.type); // "start", at seq 1
 * }
 * ```
 */
export class EventTracker {
  /** The options in force. */
  readonly options: EventRules;
  readonly #newId: () => string;
  readonly #cameras = new Map<string, Anomaly>();

  /**
   * @throws {RangeError} when a threshold is not finite, `offThreshold > onThreshold`, or a
   * duration is negative or not finite.
   */
  constructor(options: EventTrackerOptions) {
    const { onThreshold, offThreshold, minDurationMs, updateIntervalMs } = options;
    if (!Number.isFinite(onThreshold) || !Number.isFinite(offThreshold)) {
      throw new RangeError("Cannot track anomaly events: thresholds must be finite numbers");
    }
    if (offThreshold > onThreshold) {
      throw new RangeError(
        `Cannot track anomaly events: off_threshold ${offThreshold} is above on_threshold ${onThreshold}`,
      );
    }
    for (
      const [name, v] of [["min_duration_ms", minDurationMs], [
        "update_interval_ms",
        updateIntervalMs,
      ]] as const
    ) {
      if (!(v >= 0) || !Number.isFinite(v)) {
        throw new RangeError(`Cannot track anomaly events: ${name} must be >= 0, got ${v}`);
      }
    }
    this.options = { onThreshold, offThreshold, minDurationMs, updateIntervalMs };
    this.#newId = options.newId ?? (() => crypto.randomUUID());
  }

  /**
   * Feeds one frame's score; returns the event it causes, if any.
   */
  observe(sample: EventSample): AnomalyEvent | undefined {
    const { onThreshold, offThreshold, minDurationMs, updateIntervalMs } = this.options;
    const level = sample.normalizedScore ?? (sample.anomalous ? 1 : 0);
    const anomaly = this.#cameras.get(sample.camera);
    if (anomaly === undefined) {
      if (level < onThreshold) return undefined;
      const fresh: Anomaly = {
        id: "",
        active: false,
        startSeq: sample.seq,
        lastSeq: sample.seq,
        startedAt: sample.at,
        lastAt: sample.at,
        peakLevel: level,
        peakScore: sample.score,
        peakNormalizedScore: sample.normalizedScore,
        peakSeq: sample.seq,
        frames: 1,
        lastEmittedAt: sample.at,
      };
      this.#cameras.set(sample.camera, fresh);
      return this.#maybeStart(sample.camera, fresh, minDurationMs);
    }
    if (level < offThreshold) {
      this.#cameras.delete(sample.camera);
      return anomaly.active ? this.#event("end", sample.camera, anomaly, "cleared") : undefined;
    }
    anomaly.lastSeq = sample.seq;
    anomaly.lastAt = sample.at;
    anomaly.frames++;
    if (
      level > anomaly.peakLevel || (level === anomaly.peakLevel && sample.score > anomaly.peakScore)
    ) {
      anomaly.peakLevel = level;
      anomaly.peakSeq = sample.seq;
    }
    if (sample.score > anomaly.peakScore) anomaly.peakScore = sample.score;
    if (
      sample.normalizedScore !== undefined &&
      (anomaly.peakNormalizedScore === undefined ||
        sample.normalizedScore > anomaly.peakNormalizedScore)
    ) {
      anomaly.peakNormalizedScore = sample.normalizedScore;
    }
    if (!anomaly.active) return this.#maybeStart(sample.camera, anomaly, minDurationMs);
    if (updateIntervalMs > 0 && sample.at - anomaly.lastEmittedAt >= updateIntervalMs) {
      anomaly.lastEmittedAt = sample.at;
      return this.#event("update", sample.camera, anomaly);
    }
    return undefined;
  }

  /**
   * Ends the camera's active anomaly (a pending one is forgotten); returns its `end` event,
   * if one was active.
   */
  end(camera: string, reason: AnomalyEndReason): AnomalyEvent | undefined {
    const anomaly = this.#cameras.get(camera);
    if (anomaly === undefined) return undefined;
    this.#cameras.delete(camera);
    return anomaly.active ? this.#event("end", camera, anomaly, reason) : undefined;
  }

  /** Ends every camera's active anomaly; returns the `end` events. */
  endAll(reason: AnomalyEndReason): AnomalyEvent[] {
    const events: AnomalyEvent[] = [];
    for (const camera of [...this.#cameras.keys()]) {
      const event = this.end(camera, reason);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /** Whether the camera has an anomaly whose `start` was emitted and whose `end` was not. */
  isActive(camera: string): boolean {
    return this.#cameras.get(camera)?.active ?? false;
  }

  #maybeStart(camera: string, anomaly: Anomaly, minDurationMs: number): AnomalyEvent | undefined {
    if (anomaly.lastAt - anomaly.startedAt < minDurationMs) return undefined;
    anomaly.active = true;
    anomaly.id = this.#newId();
    anomaly.lastEmittedAt = anomaly.lastAt;
    return this.#event("start", camera, anomaly);
  }

  #event(
    type: AnomalyEventType,
    camera: string,
    a: Anomaly,
    reason?: AnomalyEndReason,
  ): AnomalyEvent {
    return {
      type,
      id: a.id,
      camera,
      startSeq: a.startSeq,
      lastSeq: a.lastSeq,
      startedAt: a.startedAt,
      lastAt: a.lastAt,
      durationMs: a.lastAt - a.startedAt,
      peakScore: a.peakScore,
      ...(a.peakNormalizedScore !== undefined
        ? { peakNormalizedScore: a.peakNormalizedScore }
        : {}),
      peakSeq: a.peakSeq,
      frames: a.frames,
      ...(reason !== undefined ? { reason } : {}),
    };
  }
}
