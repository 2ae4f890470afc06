/**
 * The batcher: frames from every camera meet here and leave as batches for inference.
 *
 * Backpressure, per edge:
 * - **decoders -> batcher** (`push()` / `writable()`): never blocks. Each camera has a
 *   bounded queue of `queuePerCamera` waiting frames; when it is full the camera's
 *   *oldest* waiting frame is dropped and counted (`stats().cameras[name].dropped`).
 * - **batcher -> inference** (`readable`, high-water mark 0): pull-based. A batch is cut
 *   only when the consumer asks for one, i.e. when inference is ready for the next batch;
 *   while a batch is in flight the next one fills in the per-camera queues.
 *
 * A requested batch is delivered as soon as `maxBatch` frames are waiting, or `maxWaitMs`
 * after the oldest waiting frame arrived, whichever comes first (if inference was busy
 * past that moment, the batch leaves at once). Batches take frames round-robin across
 * cameras, oldest first within a camera, continuing from where the previous batch stopped,
 * so a fast camera cannot crowd out a slow one.
 *
 * @example
 * ```ts
 * import { Batcher } from "./batcher.ts";
 *
 * await using batcher = new Batcher({ maxBatch: 2, maxWaitMs: 20, queuePerCamera: 4 });
 * const rgb = new Uint8Array(3);
 * for (const seq of [0, 1, 2]) {
 *   batcher.push({ camera: "cam", seq, capturedAt: Date.now(), width: 1, height: 1, rgb });
 * }
 * batcher.close();
 * for await (const batch of batcher.readable) console.log(batch.length); // 2, then 1
 * // With a camera: camera.readable.pipeTo(batcher.writable())
 * ```
 *
 * @module
 */
import type { Frame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";

/** The time source and timers the batcher uses; tests pass a fake one. */
export interface BatcherClock {
  /** Milliseconds, monotonic enough to measure waits. */
  now(): number;
  /** Calls `callback` once after `ms`; returns a handle for {@linkcode clearTimeout}. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer that has not fired yet. */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and the global timers. */
export const REAL_CLOCK: BatcherClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Options of {@linkcode Batcher}. */
export interface BatcherOptions {
  /** A batch holds at most this many frames (>= 1). */
  readonly maxBatch: number;
  /** A requested batch leaves at most this long after its oldest frame arrived (>= 0). */
  readonly maxWaitMs: number;
  /** How many frames may wait per camera before the oldest is dropped (>= 1). */
  readonly queuePerCamera: number;
  /**
   * Cameras known in advance: they appear in `stats()` before their first frame, and the
   * round-robin visits them in this order. Other cameras are added on their first frame.
   */
  readonly cameras?: readonly string[];
  /** Time source; default {@linkcode REAL_CLOCK}. */
  readonly clock?: BatcherClock;
  /** Says once per camera when it starts dropping frames. */
  readonly logger?: Logger;
}

/** One camera's counters in {@linkcode BatcherStats}. */
export interface BatcherCameraStats {
  /** Frames pushed while the batcher was open. */
  readonly accepted: number;
  /** Waiting frames dropped because the camera's queue was full (inference behind). */
  readonly dropped: number;
  /** Frames handed to inference in a batch. */
  readonly emitted: number;
  /** Frames waiting now. */
  readonly waiting: number;
}

/** What {@linkcode Batcher.stats} returns. */
export interface BatcherStats {
  /** Per camera, in round-robin order. */
  readonly cameras: Readonly<Record<string, BatcherCameraStats>>;
  /** Batches handed to inference. */
  readonly batches: number;
  /** Frames handed to inference. */
  readonly frames: number;
  /** `frames / batches`; 0 before the first batch. */
  readonly meanBatchSize: number;
  /** Frames waiting now, all cameras. */
  readonly waiting: number;
  /** Frames pushed after close, or still waiting when the batcher was disposed. */
  readonly discarded: number;
}

interface Waiting {
  readonly frame: Frame;
  readonly at: number;
}

interface CameraQueue {
  readonly name: string;
  readonly items: Waiting[];
  accepted: number;
  dropped: number;
  emitted: number;
}

function checkOption(name: string, value: number, min: number, integer: boolean): void {
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new RangeError(
      `Cannot make batcher: ${name} must be ${
        integer ? "an integer" : "a number"
      } >= ${min}, got ${value}`,
    );
  }
}

/**
 * Collects frames from all cameras into batches; see the module documentation for the
 * flush rule, fairness and backpressure policy.
 *
 * `close()` ends the input: frames still waiting leave in full-speed batches (no waiting
 * for `maxWaitMs`), then `readable` closes. Disposing clears the timer, discards waiting
 * frames (counted in `discarded`) and closes `readable` at once.
 */
export class Batcher implements AsyncDisposable {
  /** Batches for inference; high-water mark 0, so a batch is cut only when read. */
  readonly readable: ReadableStream<Frame[]>;
  #maxBatch: number;
  #maxWaitMs: number;
  #queuePerCamera: number;
  #clock: BatcherClock;
  #logger: Logger | undefined;
  #queues = new Map<string, CameraQueue>();
  #order: CameraQueue[] = [];
  #cursor = 0;
  #waiting = 0;
  #batches = 0;
  #frames = 0;
  #discarded = 0;
  #controller: ReadableStreamDefaultController<Frame[]> | undefined;
  #pending: (() => void) | undefined;
  #timer: { handle: unknown } | undefined;
  #closing = false;
  #done = false;

  /**
   * Makes an open batcher with an empty queue per known camera.
   *
   * @throws {RangeError} when `maxBatch` or `queuePerCamera` is not an integer >= 1, or
   * `maxWaitMs` is not a number >= 0.
   */
  constructor(options: BatcherOptions) {
    checkOption("maxBatch", options.maxBatch, 1, true);
    checkOption("maxWaitMs", options.maxWaitMs, 0, false);
    checkOption("queuePerCamera", options.queuePerCamera, 1, true);
    this.#maxBatch = options.maxBatch;
    this.#maxWaitMs = options.maxWaitMs;
    this.#queuePerCamera = options.queuePerCamera;
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#logger = options.logger;
    for (const name of options.cameras ?? []) this.#queue(name);
    this.readable = new ReadableStream<Frame[]>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () =>
          new Promise<void>((resolve) => {
            this.#pending = resolve;
            this.#service();
          }),
        cancel: () => this.#finish(true),
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Queues a frame; never blocks. When the camera's queue is full its oldest waiting
   * frame is dropped and counted.
   *
   * @returns false when the batcher is closed (the frame is discarded and counted).
   */
  push(frame: Frame): boolean {
    if (this.#closing) {
      this.#discarded++;
      return false;
    }
    const q = this.#queue(frame.camera);
    if (q.items.length >= this.#queuePerCamera) {
      q.items.shift();
      q.dropped++;
      this.#waiting--;
      if (q.dropped === 1) {
        this.#logger?.warn("dropping oldest frames: inference is behind", {
          camera: q.name,
          queue: this.#queuePerCamera,
        });
      }
    }
    q.items.push({ frame, at: this.#clock.now() });
    q.accepted++;
    this.#waiting++;
    this.#service();
    return true;
  }

  /**
   * A new writable side for one producer (call it once per camera, since a pipe locks its
   * destination). Its writes call {@linkcode push} and resolve at once: the decoder never
   * waits. Closing or aborting it does not close the batcher.
   */
  writable(): WritableStream<Frame> {
    return new WritableStream<Frame>({ write: (frame) => void this.push(frame) });
  }

  /** Counters per camera and overall. */
  stats(): BatcherStats {
    const cameras: Record<string, BatcherCameraStats> = {};
    for (const q of this.#order) {
      cameras[q.name] = {
        accepted: q.accepted,
        dropped: q.dropped,
        emitted: q.emitted,
        waiting: q.items.length,
      };
    }
    return {
      cameras,
      batches: this.#batches,
      frames: this.#frames,
      meanBatchSize: this.#batches === 0 ? 0 : this.#frames / this.#batches,
      waiting: this.#waiting,
      discarded: this.#discarded,
    };
  }

  /**
   * Ends the input: later pushes are discarded, waiting frames are flushed without waiting
   * for `maxWaitMs`, then `readable` closes. Idempotent.
   */
  close(): void {
    this.#closing = true;
    this.#service();
  }

  /** Clears the timer, discards waiting frames and closes `readable`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#closing = true;
    this.#finish(false);
    return Promise.resolve();
  }

  #queue(name: string): CameraQueue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      q = { name, items: [], accepted: 0, dropped: 0, emitted: 0 };
      this.#queues.set(name, q);
      this.#order.push(q);
    }
    return q;
  }

  /** Cuts a batch if one is requested and due; arms the timer if one is requested but not due. */
  #service(): void {
    if (this.#done) return;
    if (this.#closing && this.#waiting === 0) return this.#finish(false);
    if (this.#pending === undefined || this.#waiting === 0) return;
    if (this.#closing || this.#waiting >= this.#maxBatch) return this.#emit();
    const wait = this.#deadline() - this.#clock.now();
    if (wait <= 0) return this.#emit();
    if (this.#timer === undefined) {
      this.#timer = {
        handle: this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#service();
        }, wait),
      };
    }
  }

  /** When the oldest waiting frame has waited `maxWaitMs`. */
  #deadline(): number {
    let oldest = Infinity;
    for (const q of this.#order) {
      const head = q.items[0];
      if (head !== undefined && head.at < oldest) oldest = head.at;
    }
    return oldest + this.#maxWaitMs;
  }

  #emit(): void {
    this.#clearTimer();
    const batch: Frame[] = [];
    const n = this.#order.length;
    while (batch.length < this.#maxBatch && this.#waiting > 0) {
      const q = this.#order[this.#cursor]!;
      this.#cursor = (this.#cursor + 1) % n;
      const w = q.items.shift();
      if (w === undefined) continue;
      batch.push(w.frame);
      q.emitted++;
      this.#waiting--;
    }
    this.#batches++;
    this.#frames += batch.length;
    const resolve = this.#pending;
    this.#pending = undefined;
    this.#controller!.enqueue(batch);
    resolve?.();
    if (this.#closing && this.#waiting === 0) this.#finish(false);
  }

  /** Stops for good; `cancelled` when the consumer cancelled `readable`. */
  #finish(cancelled: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#closing = true;
    this.#clearTimer();
    for (const q of this.#order) {
      this.#discarded += q.items.length;
      q.items.length = 0;
    }
    this.#waiting = 0;
    if (!cancelled) this.#controller!.close();
    const resolve = this.#pending;
    this.#pending = undefined;
    resolve?.();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer.handle);
      this.#timer = undefined;
    }
  }
}
