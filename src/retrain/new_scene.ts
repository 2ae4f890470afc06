/**
 * The frames of a new scene, for a training after the drift trigger fired: the frames of the
 * drifted window are the first frames of the new scene, so the run trains only on the normal
 * frames captured since the first of them (older frames show the old scene), once `needed`
 * of them are in the store.
 *
 * @example
 * ```ts
 * import { NewScene } from "./new_scene.ts";
 * import type { FrameStore } from "./frame_store.ts";
 * import type { StoreWriter } from "./store_writer.ts";
 *
 * async function learnNewScene(store: FrameStore, writer: StoreWriter, signal: AbortSignal) {
 *   const scene = new NewScene(store, writer, { window: 100, needed: 50 });
 *   scene.noteKept(Date.now()); // each frame kept as normal
 *   scene.begin(Date.now()); // the drift trigger fired
 *   const frames = await scene.collect(signal, (n) => console.log(`${n} of 50`));
 *   scene.end();
 *   return frames;
 * }
 * ```
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";
import type { FrameStore, StoredFrame } from "./frame_store.ts";
import type { StoreWriter } from "./store_writer.ts";

/** Options of {@linkcode NewScene}. */
export interface NewSceneOptions {
  /** The drift trigger's window: how many recent kept frames it looks at (0: no drift). */
  readonly window: number;
  /** Normal frames of the new scene a training needs. */
  readonly needed: number;
}

/** Tracks the drift window and collects the new scene's frames; see the module doc. */
export class NewScene {
  readonly #store: FrameStore;
  readonly #writer: StoreWriter;
  readonly #window: number;
  /** Normal frames of the new scene a training needs. */
  readonly needed: number;
  /** Capture times of the last kept frames (the drift window's frames). */
  #keptAt: number[] = [];
  #since: number | undefined;

  /**
   * Reads `store`; `writer` (writing to it) says when a frame was stored.
   *
   * @throws {RangeError} when `needed` is not a positive integer.
   */
  constructor(store: FrameStore, writer: StoreWriter, options: NewSceneOptions) {
    this.#store = store;
    this.#writer = writer;
    this.#window = options.window;
    this.needed = assertPositiveInteger(
      options.needed,
      "driftFrames",
      "Cannot make a retrain coordinator",
    );
  }

  /** Whether a new scene is being collected (between `begin` and `end`). */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /** Notes the capture time of a frame kept as normal. */
  noteKept(capturedAt: number): void {
    this.#keptAt.push(capturedAt);
    if (this.#keptAt.length > this.#window) this.#keptAt.shift();
  }

  /** Forgets the window (after a promotion the new model's frames make the next one). */
  forget(): void {
    this.#keptAt = [];
  }

  /** The drift fired: the new scene starts at the window's first frame (else at `now`). */
  begin(now: number): void {
    this.#since = this.#keptAt[0] ?? now;
  }

  /** The run is over. */
  end(): void {
    this.#since = undefined;
  }

  /** The normal frames in the store captured since the new scene began, oldest first. */
  frames(): StoredFrame[] {
    return this.#store.list({
      label: "normal",
      ...(this.#since !== undefined ? { since: this.#since } : {}),
    });
  }

  /**
   * Waits until the store holds `needed` frames of the new scene; `onCount` hears each new
   * count before that.
   *
   * @throws the signal's reason when it aborts.
   */
  async collect(signal: AbortSignal, onCount: (collected: number) => void): Promise<StoredFrame[]> {
    let told = -1;
    for (;;) {
      signal.throwIfAborted();
      const frames = this.frames();
      if (frames.length >= this.needed) return frames;
      if (frames.length !== told) {
        told = frames.length;
        onCount(frames.length);
      }
      await this.#writer.nextStored(signal);
    }
  }
}
