/**
 * The retraining lifecycle of a store key's model, as one discriminated union of events
 * ({@linkcode RetrainEvent}, by `state`): `src/retrain` makes them, `src/publish` turns them
 * into the `<prefix>/<camera>/model` message (see `docs/mqtt.md`) and `/status` shows the
 * latest. Each variant carries exactly its own fields.
 *
 * @example
 * ```ts
 * import type { RetrainEvent } from "./retrain_event.ts";
 *
 * const event: RetrainEvent = {
 *   state: "collecting", key: "line-1", at: Date.now(), trigger: "bootstrap",
 *   collected: 120, needed: 500,
 * };
 * ```
 *
 * @module
 */

/**
 * The lifecycle states: `idle` (serving, nothing running), `collecting` (gathering normal
 * frames; during bootstrap the key has no model yet), `training`, `validating` (candidate
 * against current), then `promoted`, `refused` (the candidate was worse), `rolled_back` or
 * `failed`.
 */
export type ModelState = RetrainEvent["state"];

/**
 * What started a training: `bootstrap` (the first model), `drift`, `count`, `schedule`
 * (interval or daily time) or `command` (an operator).
 */
export type RetrainTrigger = "bootstrap" | "schedule" | "count" | "drift" | "command";

/** What one model scored on the held-out frames (see `src/retrain/validate.ts`). */
export interface ModelFigures {
  /** Held-out normal frames scored. */
  readonly normalFrames: number;
  /** Share of them flagged anomalous, in [0, 1]. */
  readonly flaggedFraction: number;
  /** Median normalised score of them, in [0, 1] (0.5 is the threshold). */
  readonly medianNormalized: number;
  /** Frames marked anomalous scored. */
  readonly anomalousFrames: number;
  /** Share of those flagged anomalous, when there are any. */
  readonly detectedFraction?: number;
  /** AUROC of normal vs anomalous frames, when there are both. */
  readonly auroc?: number;
}

/** The validation behind a decision: the candidate's figures and the serving model's. */
export interface ValidationFigures {
  /** The candidate's figures. */
  readonly candidate: ModelFigures;
  /** The serving model's figures; absent while bootstrapping (there is none). */
  readonly current?: ModelFigures;
}

/** The trainer's progress, as published. */
export interface TrainingProgress {
  /** Steps done. */
  readonly step: number;
  /** Steps in the run. */
  readonly total: number;
  /** The loss at that step, when known. */
  readonly loss?: number;
  /** Estimated milliseconds left, when known. */
  readonly etaMs?: number;
}

/** What every event carries. */
interface EventBase {
  /** The store key (a camera, or the cameras sharing a model). */
  readonly key: string;
  /** When it happened, epoch milliseconds. */
  readonly at: number;
  /** The version serving when the event was made (none while bootstrapping). */
  readonly serving?: string;
  /** The frame store's last write error (a full disk), while writes keep failing. */
  readonly storeError?: string;
}

/** What the events of one training run carry: what started it. */
interface RunBase extends EventBase {
  /** What started the run. */
  readonly trigger: RetrainTrigger;
  /** That trigger in words (the drift figures, the operator's reason), when known. */
  readonly triggerReason?: string;
}

/** Gathering normal frames: for the first model, or the new scene after a drift. */
export interface CollectingEvent extends RunBase {
  readonly state: "collecting";
  /** Normal frames collected. */
  readonly collected: number;
  /** Normal frames needed before the training starts. */
  readonly needed: number;
  /** What is collected, in words (after a drift: frames of the new scene). */
  readonly note?: string;
}

/** A candidate trains. */
export interface TrainingEvent extends RunBase {
  readonly state: "training";
  /** The trainer's last progress, once it reported one. */
  readonly progress?: TrainingProgress;
  /** About the training data, in words (frames left out as possible defects). */
  readonly note?: string;
}

/** The candidate is scored on held-out frames against the serving model. */
export interface ValidatingEvent extends RunBase {
  readonly state: "validating";
  /** The candidate's version. */
  readonly candidate: string;
}

/** The candidate passed and serves now (`serving` is its version). */
export interface PromotedEvent extends RunBase {
  readonly state: "promoted";
  readonly serving: string;
  /** The version that served before, if any. */
  readonly from?: string;
  /** Why it was promoted. */
  readonly decisionReason: string;
  readonly validation: ValidationFigures;
}

/** The candidate was worse by more than a margin; the serving model stays. */
export interface RefusedEvent extends RunBase {
  readonly state: "refused";
  /** The refused candidate's version. */
  readonly candidate: string;
  /** Why it was refused. */
  readonly decisionReason: string;
  /**
   * The figures it was refused on; absent when it was refused before scoring (a candidate
   * without the usable int8 graph `model.precision: int8` asks for).
   */
  readonly validation?: ValidationFigures;
}

/** A rollback (an operator's command) restored the previous version, now `serving`. */
export interface RolledBackEvent extends RunBase {
  readonly state: "rolled_back";
  readonly serving: string;
  /** The version that served before, if any. */
  readonly from?: string;
  /** The operator's reason. */
  readonly decisionReason: string;
}

/** Training, validation, promotion or a rollback failed; the serving model stays. */
export interface FailedEvent extends EventBase {
  readonly state: "failed";
  /** What started the failed run, when one ran. */
  readonly trigger?: RetrainTrigger;
  readonly triggerReason?: string;
  /** The error, "Cannot ...". */
  readonly decisionReason: string;
}

/** Nothing runs: the serving model (if any) serves. */
export interface IdleEvent extends EventBase {
  readonly state: "idle";
  /** True right after a training was cancelled. */
  readonly cancelled: boolean;
}

/** One step of the retraining lifecycle of a store key; see the module doc. */
export type RetrainEvent =
  | CollectingEvent
  | TrainingEvent
  | ValidatingEvent
  | PromotedEvent
  | RefusedEvent
  | RolledBackEvent
  | FailedEvent
  | IdleEvent;

/** The events that end a run with a decision (they carry `decisionReason`). */
export type DecisionEvent = PromotedEvent | RefusedEvent | RolledBackEvent | FailedEvent;

/** The reason a cancelled training's `idle` event gives. */
export const CANCELLED_REASON = "training cancelled";

/**
 * The reason of an event in words: the decision (or the cancellation) for an event that
 * ends a run, else the note, else (training, validating) the trigger's words; undefined
 * when there is none.
 */
export function eventReason(event: RetrainEvent): string | undefined {
  switch (event.state) {
    case "promoted":
    case "refused":
    case "rolled_back":
    case "failed":
      return event.decisionReason;
    case "idle":
      return event.cancelled ? CANCELLED_REASON : undefined;
    case "collecting":
      return event.note;
    case "training":
      return event.note ?? event.triggerReason;
    case "validating":
      return event.triggerReason;
  }
}

/** The candidate an event is about (validating or refused), if any. */
export function candidateOf(event: RetrainEvent): string | undefined {
  return event.state === "validating" || event.state === "refused" ? event.candidate : undefined;
}
