/**
 * Background writes of frames to a key's {@linkcode FrameStore}, for a caller that must never
 * block (the retrain coordinator's `observe`).
 *
 * - **Backpressure.** At most `maxPending` writes in flight; a frame beyond that is dropped
 *   and counted ({@linkcode StoreWriter.dropped}).
 * - **Storage errors.** A failing write (a full disk) never throws: the error, in words with
 *   what to do, is {@linkcode StoreWriter.error} until a write succeeds again, and
 *   `onError` hears of it on the first failure and then at most once per `repeatMs`.
 *
 * @example
 * ```ts
 * import { StoreWriter } from "./store_writer.ts";
 * import type { FrameStore } from "./frame_store.ts";
 * import type { Frame } from "../core/frame.ts";
 *
 * async function keep(store: FrameStore, frame: Frame): Promise<void> {
 *   const writer = new StoreWriter(store, { onError: (error) => console.warn(error) });
 *   writer.write(frame, 0.12, () => console.log("stored"));
 *   await writer.settled();
 * }
 * ```
 *
 * @module
 */
import type { Frame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import { assertPositiveInteger } from "../core/check.ts";
import type { FrameStore } from "./frame_store.ts";

/** Options of {@linkcode StoreWriter}. */
export interface StoreWriterOptions {
  /** Writes in flight before frames are dropped. Default 4. */
  readonly maxPending?: number;
  /** Least time between two `onError` calls while writes keep failing. Default 60000 ms. */
  readonly repeatMs?: number;
  /** Hears of a failing store (the error in words); exceptions are the caller's. */
  readonly onError?: (error: string) => void;
  /** Gets a warning per told failure and a line when writes succeed again. */
  readonly logger?: Logger;
  /** The clock (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

/** Writes frames to a store in the background; see the module doc. */
export class StoreWriter {
  readonly #store: FrameStore;
  readonly #o: StoreWriterOptions;
  readonly #max: number;
  readonly #writes = new Set<Promise<unknown>>();
  readonly #onStored = new Set<() => void>();
  #dropped = 0;
  #error: string | undefined;
  #toldAt = -Infinity;

  /**
   * Writes to `store` (which the caller opens and closes).
   *
   * @throws {RangeError} when `maxPending` is not a positive integer.
   */
  constructor(store: FrameStore, options: StoreWriterOptions = {}) {
    this.#store = store;
    this.#o = options;
    this.#max = assertPositiveInteger(
      options.maxPending ?? 4,
      "maxPendingWrites",
      "Cannot make a retrain coordinator",
    );
  }

  /** Frames dropped because too many writes were in flight. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The store's last write error, in words, while writes keep failing. */
  get error(): string | undefined {
    return this.#error;
  }

  /**
   * Stores `frame` as normal (with `score` when finite) in the background; `then` runs once
   * it is stored. Never blocks, never throws.
   */
  write(frame: Frame, score: number, then: () => void = () => {}): void {
    if (this.#writes.size >= this.#max) {
      this.#dropped++;
      return;
    }
    const p = this.#store.add(frame, Number.isFinite(score) ? { score } : {}).then((r) => {
      if (r.ok) {
        if (this.#error !== undefined) {
          this.#error = undefined;
          this.#o.logger?.info("the frame store takes frames again");
        }
        then();
        for (const wake of this.#onStored) wake();
      } else {
        this.#failed(r.error);
      }
    });
    this.#writes.add(p);
    void p.finally(() => this.#writes.delete(p));
  }

  /** Resolves after the next stored frame, or when `signal` aborts. */
  nextStored(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.#onStored.delete(wake);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      this.#onStored.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  /** Resolves when the writes in flight have settled. Never rejects. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#writes);
  }

  #failed(error: Error): void {
    this.#error = `Cannot store frames in ${this.#store.dir}: ${error.message}; ` +
      "inspection goes on, but no frames are collected for retraining until the store " +
      "can be written (free disk space or fix the folder's permissions)";
    const now = (this.#o.now ?? Date.now)();
    if (now - this.#toldAt < (this.#o.repeatMs ?? 60_000)) return;
    this.#toldAt = now;
    this.#o.logger?.warn("retrain frame not stored", { error: this.#error });
    this.#o.onError?.(this.#error);
  }
}
