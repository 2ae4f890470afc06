/**
 * Promotion: whether a candidate model may replace the one that serves.
 *
 * Both models score the same held-out recent normal frames (and the frames an operator
 * marked anomalous, when there are any). Raw scores of two models are not on one scale, so
 * each model is judged against its own thresholds:
 *
 * - `flaggedFraction`: the share of held-out normal frames the model calls anomalous
 *   (raw score strictly above its threshold), i.e. its false-alarm rate on normal frames;
 * - `medianNormalized`: the median normalised score of those frames
 *   (`clamp((p - threshold) / (max - min) + 0.5, 0, 1)`, 0.5 at the threshold);
 * - with anomalous frames: `detectedFraction` (the share flagged) and `auroc` (normal vs
 *   anomalous, rank based, so scale free).
 *
 * The candidate is refused when any figure is worse than the current model's by more than
 * its margin; every refusal carries a sentence a person can read, e.g. "candidate flags
 * 12 % of held-out normal frames vs 2 % for the current model (margin 5 %)".
 *
 * {@linkcode decidePromotion} is a pure function over scores; {@linkcode scoreFrames} and
 * {@linkcode validateCandidate} run engines over frames to get them.
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";
import { median } from "../core/percentiles.ts";
import type { ModelFigures } from "../core/retrain_event.ts";
import { stack, type Tensor } from "../core/tensor.ts";
import { auroc } from "../eval/metrics.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import type { Thresholds } from "../model/model.ts";
import { normalizeScore } from "../model/thresholds.ts";

/** One model's scores on the held-out frames, with the thresholds they are judged by. */
export interface ModelScores {
  /** Raw scores on held-out normal frames. */
  readonly normal: ArrayLike<number>;
  /** Raw scores on frames marked anomalous (same frames for both models), if any. */
  readonly anomalous?: ArrayLike<number>;
  /** The model's thresholds. */
  readonly thresholds: Thresholds;
  /**
   * How the decision's sentences name the candidate (default `candidate`), e.g.
   * `candidate's int8 graph` when its int8 graph was validated. Ignored for the current model.
   */
  readonly name?: string;
}

/**
 * Margins of {@linkcode decidePromotion}: the four a pipeline file sets
 * (`retrain.promotion.margins`, resolved; their defaults live in `src/config/defaults.ts`)
 * and the fewest frames to decide on.
 */
export interface PromotionMargins {
  /**
   * How much larger the candidate's share of flagged normal frames may be than the
   * current model's (absolute fraction).
   */
  readonly flaggedFraction: number;
  /** How much higher its median normalised normal score may be. */
  readonly medianNormalized: number;
  /** How much lower its share of detected anomalous frames may be. */
  readonly detectedFraction: number;
  /** How much lower its AUROC (normal vs anomalous) may be. */
  readonly auroc: number;
  /** Fewest held-out normal frames to decide on. Default 1. */
  readonly minNormalFrames?: number;
}

/** {@linkcode PromotionMargins} with `minNormalFrames` filled in. */
export type ResolvedPromotionMargins = Required<PromotionMargins>;

/** The decision of {@linkcode decidePromotion}. */
export interface PromotionDecision {
  /** Whether the candidate may serve. */
  readonly promote: boolean;
  /** One sentence summing up the decision (the refusals first when refused). */
  readonly reason: string;
  /** Each refusal, one sentence each; empty when promoted. */
  readonly refusals: readonly string[];
  /** The candidate's figures. */
  readonly candidate: ModelFigures;
  /** The current model's figures, when there is a current model. */
  readonly current?: ModelFigures;
  /** The margins applied. */
  readonly margins: ResolvedPromotionMargins;
}

/**
 * Checks margins and fills in `minNormalFrames` (default 1).
 *
 * @throws {RangeError} naming the margin when one is negative or not finite, or
 * `minNormalFrames` is not a positive integer.
 */
export function resolveMargins(margins: PromotionMargins): ResolvedPromotionMargins {
  const resolved = { minNormalFrames: 1, ...margins };
  for (const [key, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`Cannot use promotion margin ${key} ${value}: expected a number >= 0`);
    }
  }
  assertPositiveInteger(
    resolved.minNormalFrames,
    "minNormalFrames",
    "Cannot use promotion margins",
  );
  return resolved;
}

function checkScores(scores: ArrayLike<number>, what: string): number[] {
  const out = Array.from(scores);
  if (out.some((s) => Number.isNaN(s))) {
    throw new RangeError(`Cannot decide promotion: a ${what} score is NaN`);
  }
  return out;
}

/**
 * A model's figures on held-out frames (see the module documentation).
 *
 * @throws {RangeError} when there is no normal score or a score is NaN.
 */
export function modelFigures(scores: ModelScores, role = "model"): ModelFigures {
  const normal = checkScores(scores.normal, `${role} normal`);
  if (normal.length === 0) {
    throw new RangeError(`Cannot decide promotion: no held-out normal frames for the ${role}`);
  }
  const anomalous = checkScores(scores.anomalous ?? [], `${role} anomalous`);
  const t = scores.thresholds;
  const flagged = normal.filter((s) => s > t.threshold).length;
  const figures: ModelFigures = {
    normalFrames: normal.length,
    flaggedFraction: flagged / normal.length,
    medianNormalized: median(normal.map((s) => normalizeScore(s, t))),
    anomalousFrames: anomalous.length,
  };
  if (anomalous.length === 0) return figures;
  const labels = [...normal.map(() => 0), ...anomalous.map(() => 1)];
  return {
    ...figures,
    detectedFraction: anomalous.filter((s) => s > t.threshold).length / anomalous.length,
    auroc: auroc([...normal, ...anomalous], labels),
  };
}

function pct(x: number): string {
  const p = x * 100;
  return `${Number.isInteger(p) ? p : Math.round(p * 10) / 10} %`;
}

function num(x: number): string {
  return x.toFixed(2);
}

/**
 * Decides whether `candidate` may replace `current`. Without a current model (the first
 * model of a camera) the candidate is promoted. Otherwise it is refused when it is worse
 * than the current model by more than a margin on any figure: more held-out normal frames
 * flagged, a higher median normalised normal score, fewer marked-anomalous frames
 * detected, or a lower AUROC. Pure: no I/O.
 *
 * @example
 * ```ts
 * const t = { threshold: 1, min: 0, max: 2 };
 * const margins = { flaggedFraction: 0.05, medianNormalized: 0.1, detectedFraction: 0.1, auroc: 0.02 };
 * decidePromotion({ normal: [0.2, 1.5], thresholds: t }, { normal: [0.2, 0.3], thresholds: t }, margins);
 * // { promote: false, reason: "candidate flags 50 % of held-out normal frames vs 0 % for the
 * //   current model (margin 5 %)", ... }
 * ```
 * @throws {RangeError} when either model has fewer than `minNormalFrames` normal scores,
 * the two models scored different numbers of frames, a score is NaN, or a margin is bad.
 */
export function decidePromotion(
  candidate: ModelScores,
  current: ModelScores | undefined,
  margins: PromotionMargins,
): PromotionDecision {
  const m = resolveMargins(margins);
  const cand = modelFigures(candidate, "candidate");
  if (cand.normalFrames < m.minNormalFrames) {
    throw new RangeError(
      `Cannot decide promotion: ${cand.normalFrames} held-out normal frames, ` +
        `expected at least ${m.minNormalFrames}`,
    );
  }
  const who = candidate.name ?? "candidate";
  const base = (summary: string) =>
    `${summary}: ${who} flags ${pct(cand.flaggedFraction)} ` +
    `of held-out normal frames`;
  if (current === undefined) {
    return {
      promote: true,
      reason: `${base("no current model")} (median normalised score ${num(cand.medianNormalized)})`,
      refusals: [],
      candidate: cand,
      margins: m,
    };
  }
  const cur = modelFigures(current, "current model");
  if (cur.normalFrames !== cand.normalFrames || cur.anomalousFrames !== cand.anomalousFrames) {
    throw new RangeError(
      `Cannot decide promotion: the models scored different frames (candidate ` +
        `${cand.normalFrames} normal / ${cand.anomalousFrames} anomalous, current ` +
        `${cur.normalFrames} / ${cur.anomalousFrames})`,
    );
  }
  const refusals: string[] = [];
  // A tiny epsilon keeps "exactly at the margin" on the accepting side despite rounding.
  const eps = 1e-9;
  if (cand.flaggedFraction > cur.flaggedFraction + m.flaggedFraction + eps) {
    refusals.push(
      `${who} flags ${pct(cand.flaggedFraction)} of held-out normal frames vs ` +
        `${pct(cur.flaggedFraction)} for the current model (margin ${pct(m.flaggedFraction)})`,
    );
  }
  if (cand.medianNormalized > cur.medianNormalized + m.medianNormalized + eps) {
    refusals.push(
      `${who}'s median normalised score on held-out normal frames is ` +
        `${num(cand.medianNormalized)} vs ${num(cur.medianNormalized)} for the current model ` +
        `(margin ${num(m.medianNormalized)})`,
    );
  }
  if (
    cand.detectedFraction !== undefined && cur.detectedFraction !== undefined &&
    cand.detectedFraction < cur.detectedFraction - m.detectedFraction - eps
  ) {
    const n = cand.anomalousFrames;
    refusals.push(
      `${who} detects ${Math.round(cand.detectedFraction * n)} of ${n} frames marked ` +
        `anomalous (${pct(cand.detectedFraction)}) vs ${pct(cur.detectedFraction)} for the ` +
        `current model (margin ${pct(m.detectedFraction)})`,
    );
  }
  if (
    cand.auroc !== undefined && cur.auroc !== undefined &&
    cand.auroc < cur.auroc - m.auroc - eps
  ) {
    refusals.push(
      `${who}'s AUROC on frames marked anomalous is ${num(cand.auroc)} vs ` +
        `${num(cur.auroc)} for the current model (margin ${num(m.auroc)})`,
    );
  }
  if (refusals.length > 0) {
    return {
      promote: false,
      reason: refusals.join("; "),
      refusals,
      candidate: cand,
      current: cur,
      margins: m,
    };
  }
  let reason = `${base("not worse than the current model")} vs ${
    pct(cur.flaggedFraction)
  } for the current model, median normalised score ${num(cand.medianNormalized)} vs ${
    num(cur.medianNormalized)
  }`;
  if (cand.auroc !== undefined && cur.auroc !== undefined) {
    reason += `, AUROC ${num(cand.auroc)} vs ${num(cur.auroc)}`;
  }
  return { promote: true, reason, refusals, candidate: cand, current: cur, margins: m };
}

/** Options of {@linkcode scoreFrames} and {@linkcode validateCandidate}. */
export interface ScoreFramesOptions {
  /** Frames per engine run. Default 4. */
  readonly batchSize?: number;
  /** Aborts between batches. */
  readonly signal?: AbortSignal;
}

/**
 * Runs an engine over frames and returns each frame's score (`predScore`), in order.
 * Frames are `3 x H x W` (or `1 x 3 x H x W`) RGB tensors in [0, 1] at the engine's input
 * size; they are stacked into batches of `batchSize`.
 *
 * @throws {RangeError} when a frame's shape does not fit the engine or `batchSize` is not
 * a positive integer; the signal's reason when aborted; engine errors as they come.
 */
export async function scoreFrames(
  engine: InferenceEngine,
  frames: readonly Tensor[],
  options: ScoreFramesOptions = {},
): Promise<Float64Array> {
  const batchSize = options.batchSize ?? 4;
  assertPositiveInteger(batchSize, "batchSize", "Cannot score frames");
  const scores = new Float64Array(frames.length);
  for (let start = 0; start < frames.length; start += batchSize) {
    options.signal?.throwIfAborted();
    const items = frames.slice(start, start + batchSize).map((f) =>
      f.shape.length === 4 && f.shape[0] === 1 ? { shape: f.shape.slice(1), data: f.data } : f
    );
    const out = await engine.run(
      stack(items),
      options.signal !== undefined ? { signal: options.signal } : {},
    );
    for (let i = 0; i < items.length; i++) {
      const score = out.predScore.data[i];
      if (score === undefined) throw new RangeError("Cannot score frames: engine returned too few");
      scores[start + i] = score;
    }
  }
  return scores;
}

/** A model to validate: its engine and the thresholds its scores are judged by. */
export interface ValidationSubject {
  /** An engine holding the model. */
  readonly engine: InferenceEngine;
  /**
   * The model's thresholds; ignored for engines whose scores are already normalised
   * (`scoreKind` `normalized`: judged against 0.5 on a 0..1 scale).
   */
  readonly thresholds: Thresholds;
  /** How the decision names it (see `ModelScores.name`); candidates only. */
  readonly name?: string;
}

/** The held-out frames to validate on. */
export interface HeldOutFrames {
  /** Recent normal frames not used for training. */
  readonly normal: readonly Tensor[];
  /** Frames an operator marked anomalous, if any. */
  readonly anomalous?: readonly Tensor[];
}

/** Options of {@linkcode validateCandidate}. */
export interface ValidateCandidateOptions extends ScoreFramesOptions {
  /** The held-out frames both models score. */
  readonly frames: HeldOutFrames;
  /** The margins of the decision. */
  readonly margins: PromotionMargins;
}

const NORMALIZED_THRESHOLDS: Thresholds = Object.freeze({ threshold: 0.5, min: 0, max: 1 });

async function scoresOf(
  subject: ValidationSubject,
  frames: HeldOutFrames,
  options: ScoreFramesOptions,
): Promise<ModelScores> {
  const normal = await scoreFrames(subject.engine, frames.normal, options);
  const anomalous = frames.anomalous !== undefined && frames.anomalous.length > 0
    ? await scoreFrames(subject.engine, frames.anomalous, options)
    : undefined;
  const thresholds = subject.engine.scoreKind === "normalized"
    ? NORMALIZED_THRESHOLDS
    : subject.thresholds;
  return {
    normal,
    ...(anomalous !== undefined ? { anomalous } : {}),
    thresholds,
    ...(subject.name !== undefined ? { name: subject.name } : {}),
  };
}

/**
 * Scores the held-out frames with the candidate and (when there is one) the current model,
 * one engine after the other, and decides with {@linkcode decidePromotion}.
 *
 * @throws as {@linkcode scoreFrames} and {@linkcode decidePromotion}.
 */
export async function validateCandidate(
  candidate: ValidationSubject,
  current: ValidationSubject | undefined,
  options: ValidateCandidateOptions,
): Promise<PromotionDecision> {
  const { frames, margins, batchSize, signal } = options;
  const scoring: ScoreFramesOptions = {
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(signal !== undefined ? { signal } : {}),
  };
  const cand = await scoresOf(candidate, frames, scoring);
  const cur = current !== undefined ? await scoresOf(current, frames, scoring) : undefined;
  return decidePromotion(cand, cur, margins);
}
