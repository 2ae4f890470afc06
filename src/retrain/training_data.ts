/**
 * Data preparation of one training run, from a key's frame store:
 *
 * 1. {@linkcode leaveOutOddFrames}: for frames no model has judged (a first model, a new
 *    scene), the {@linkcode consensusFilter} leaves out the frames that differ from the
 *    others (possible defects); the frames it decoded are kept for reuse;
 * 2. {@linkcode writeTrainingRun}: holds out the most recent `holdoutFraction` of the normal
 *    frames as validation frames (decoded) and copies the others' stored PNG files into a
 *    fresh training folder `<workDir>/run-<n>/data` (the trainer's `--data`; the candidate
 *    goes to `<workDir>/run-<n>/model`).
 *
 * @example
 * ```ts
 * import { leaveOutOddFrames, writeTrainingRun } from "./training_data.ts";
 * import type { FrameStore } from "./frame_store.ts";
 *
 * async function prepare(store: FrameStore) {
 *   const { frames, decoded } = await leaveOutOddFrames(store, store.list({ label: "normal" }));
 *   return await writeTrainingRun(store, frames, {
 *     workDir: "out/retrain/line-1/work",
 *     run: 1,
 *     holdoutFraction: 0.2,
 *     decoded,
 *   });
 * }
 * ```
 *
 * @module
 */
import { join } from "node:path";
import type { Frame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import { consensusFilter } from "./consensus.ts";
import type { FrameStore, StoredFrame } from "./frame_store.ts";

/** What {@linkcode leaveOutOddFrames} kept. */
export interface FilteredFrames {
  /** The frames kept, in the order given. */
  readonly frames: readonly StoredFrame[];
  /** Every frame read for the filter, by id (kept ones reused for the held-out frames). */
  readonly decoded: ReadonlyMap<string, Frame>;
  /** The frames left out, in words (`left out 2 of 50 frames that ...`); none when none. */
  readonly note?: string;
}

/** Options of {@linkcode leaveOutOddFrames}. */
export interface LeaveOutOptions {
  /** Aborting it stops reading frames (the call then throws the signal's reason). */
  readonly signal?: AbortSignal;
  /** Gets an `info` line naming the frames left out. */
  readonly logger?: Logger;
}

/**
 * Reads `frames` from the store and leaves out those that differ from the others (see the
 * module doc).
 *
 * @throws the store's read errors; the signal's reason when it aborts.
 */
export async function leaveOutOddFrames(
  store: FrameStore,
  frames: readonly StoredFrame[],
  options: LeaveOutOptions = {},
): Promise<FilteredFrames> {
  const decoded = new Map<string, Frame>();
  const read: Frame[] = [];
  for (const f of frames) {
    options.signal?.throwIfAborted();
    const frame = await store.read(f.id);
    decoded.set(f.id, frame);
    read.push(frame);
  }
  const { dropped } = consensusFilter(read);
  if (dropped.length === 0) return { frames, decoded };
  const out = new Set(dropped);
  options.logger?.info("frames left out of the training", {
    dropped: dropped.length,
    of: read.length,
    ids: dropped.map((i) => read[i]!.seq).join(","),
  });
  return {
    frames: frames.filter((_, i) => !out.has(i)),
    decoded,
    note: `left out ${dropped.length} of ${read.length} frames that differ from the others ` +
      "(possible defects)",
  };
}

/** Options of {@linkcode writeTrainingRun}. */
export interface TrainingRunOptions {
  /** The key's work folder: emptied, then `run-<run>` made in it. */
  readonly workDir: string;
  /** The run's number (its folder's name). */
  readonly run: number;
  /** Share (0..1) of the most recent frames held out for validation. */
  readonly holdoutFraction: number;
  /** Frames already decoded, by id (from {@linkcode leaveOutOddFrames}). */
  readonly decoded?: ReadonlyMap<string, Frame>;
  /** Aborting it stops copying (the call then throws the signal's reason). */
  readonly signal?: AbortSignal;
}

/** A training run's folders and validation frames. */
export interface TrainingRun {
  /** The run's folder (remove it when the run is over). */
  readonly dir: string;
  /** The training frames, as PNG files (the trainer's `--data`). */
  readonly dataDir: string;
  /** Where the trainer writes the candidate (`--out`). */
  readonly outDir: string;
  /** The held-out normal frames, oldest first. */
  readonly holdout: readonly Frame[];
}

/**
 * Splits `frames` (oldest first) into training and held-out frames and writes the training
 * folder (see the module doc).
 *
 * @throws {RangeError} with fewer than 2 frames; the store's and the file system's errors;
 * the signal's reason when it aborts.
 */
export async function writeTrainingRun(
  store: FrameStore,
  frames: readonly StoredFrame[],
  options: TrainingRunOptions,
): Promise<TrainingRun> {
  if (frames.length < 2) {
    throw new RangeError(`${frames.length} normal frames in the store, expected at least 2`);
  }
  const held = Math.min(
    frames.length - 1,
    Math.max(1, Math.round(frames.length * options.holdoutFraction)),
  );
  const train = frames.slice(0, frames.length - held);
  const holdout = frames.slice(frames.length - held);
  await Deno.remove(options.workDir, { recursive: true }).catch(() => {});
  const dir = join(options.workDir, `run-${options.run}`);
  const dataDir = join(dir, "data");
  await Deno.mkdir(dataDir, { recursive: true });
  for (const f of train) {
    options.signal?.throwIfAborted();
    await store.copyPng(f.id, join(dataDir, `${f.id}.png`));
  }
  const decoded: Frame[] = [];
  for (const f of holdout) decoded.push(options.decoded?.get(f.id) ?? await store.read(f.id));
  return { dir, dataDir, outDir: join(dir, "model"), holdout: decoded };
}
