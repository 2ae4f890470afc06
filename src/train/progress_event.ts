/**
 * What a training reports to the process that started it: one JSON object per line on
 * standard output (`train --progress-json`), of the one type {@linkcode TrainEvent}. The
 * `train` command writes the lines ({@linkcode trainEventLine}); the retraining's
 * `TrainProcess` reads them back ({@linkcode parseTrainEvent}), checking their shape.
 *
 * @example
 * ```ts
 * import { parseTrainEvent, trainEventLine } from "./progress_event.ts";
 *
 * const line = trainEventLine({ type: "progress", step: 40, total: 250, loss: 7.3 });
 * parseTrainEvent(line); // { type: "progress", step: 40, total: 250, loss: 7.3 }
 * parseTrainEvent("info  loading teacher"); // undefined
 * ```
 *
 * @module
 */
import type { TrainingProgress } from "../core/retrain_event.ts";

/**
 * How far a training is, as reported every few steps: the published progress of a
 * retraining lifecycle event ({@linkcode TrainingProgress}) and the ETA as people read it.
 */
export interface TrainProgress extends TrainingProgress {
  /** The estimate of the time left, as people read it (`"7m34s"`), when known. */
  readonly eta?: string;
}

/** How a training ended without an error: finished, or stopped with a checkpoint. */
export interface TrainDone {
  /** Steps completed. */
  readonly step: number;
  /** Steps in the run. */
  readonly total: number;
  /** True when it was stopped (a checkpoint was written, no model). */
  readonly interrupted: boolean;
  /** Where the checkpoint is. */
  readonly checkpointDir: string;
  /** The model directory, when training finished. */
  readonly out?: string;
}

/** One line of `train --progress-json`. */
export type TrainEvent =
  | ({ readonly type: "progress" } & TrainProgress)
  | ({ readonly type: "done" } & TrainDone)
  | { readonly type: "error"; readonly message: string };

/** The JSON line of an event (without the newline). */
export function trainEventLine(event: TrainEvent): string {
  return JSON.stringify(event);
}

type Fields = Record<string, unknown>;

function count(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function optional(o: Fields, key: string, ok: (v: unknown) => boolean): boolean {
  return o[key] === undefined || ok(o[key]);
}

function progressOf(o: Fields): TrainEvent | undefined {
  if (!count(o.step) || !count(o.total)) return undefined;
  // JSON has no NaN or Infinity: a diverged loss arrives as null and is left out.
  if (!optional(o, "loss", (v) => v === null || typeof v === "number")) return undefined;
  const loss = typeof o.loss === "number" ? o.loss : undefined;
  if (!optional(o, "eta", (v) => typeof v === "string")) return undefined;
  if (!optional(o, "etaMs", (v) => typeof v === "number" && v >= 0)) return undefined;
  return {
    type: "progress",
    step: o.step,
    total: o.total,
    ...(loss !== undefined ? { loss } : {}),
    ...(typeof o.eta === "string" ? { eta: o.eta } : {}),
    ...(typeof o.etaMs === "number" ? { etaMs: o.etaMs } : {}),
  };
}

function doneOf(o: Fields): TrainEvent | undefined {
  if (!count(o.step) || !count(o.total) || typeof o.interrupted !== "boolean") return undefined;
  if (typeof o.checkpointDir !== "string") return undefined;
  if (!optional(o, "out", (v) => typeof v === "string")) return undefined;
  return {
    type: "done",
    step: o.step,
    total: o.total,
    interrupted: o.interrupted,
    checkpointDir: o.checkpointDir,
    ...(typeof o.out === "string" ? { out: o.out } : {}),
  };
}

/**
 * Reads one line of `train --progress-json`: the event, with only the fields of its type,
 * or undefined for a line that is not an event (a log line, or JSON of another shape).
 */
export function parseTrainEvent(line: string): TrainEvent | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Fields;
  switch (o.type) {
    case "progress":
      return progressOf(o);
    case "done":
      return doneOf(o);
    case "error":
      return typeof o.message === "string" ? { type: "error", message: o.message } : undefined;
    default:
      return undefined;
  }
}
