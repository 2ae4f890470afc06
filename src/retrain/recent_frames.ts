/**
 * The last frames a key saw, for an operator's mark (`set/mark` names a frame by its
 * sequence number, or means the latest).
 *
 * @example
 * ```ts
 * import { RecentFrames } from "./recent_frames.ts";
 *
 * const recent = new RecentFrames(32);
 * const rgb = new Uint8Array(3);
 * recent.push({ camera: "line-1", seq: 7, capturedAt: Date.now(), width: 1, height: 1, rgb });
 * const marked = recent.find(7); // the frame, or a RangeError saying why not
 * ```
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";
import type { Frame } from "../core/frame.ts";

/** A ring of the last `size` frames. */
export class RecentFrames {
  readonly #size: number;
  readonly #frames: Frame[] = [];

  /**
   * Holds at most `size` frames.
   *
   * @throws {RangeError} when `size` is not a positive integer.
   */
  constructor(size: number) {
    this.#size = assertPositiveInteger(size, "markRing", "Cannot make a retrain coordinator");
  }

  /** Remembers `frame`, forgetting the oldest beyond `size`. */
  push(frame: Frame): void {
    this.#frames.push(frame);
    if (this.#frames.length > this.#size) this.#frames.shift();
  }

  /**
   * The frame of sequence number `seq` (default: the latest), or a `RangeError` that says
   * why there is none ("Cannot mark frame: ...").
   */
  find(seq?: number): Frame | RangeError {
    const frame = seq === undefined
      ? this.#frames.at(-1)
      : this.#frames.findLast((f) => f.seq === seq);
    if (frame !== undefined) return frame;
    const which = seq === undefined ? "no frame seen yet" : `frame ${seq} is no longer held`;
    return new RangeError(`Cannot mark frame: ${which}`);
  }
}
