/**
 * Cuts a byte stream into frames of an exact size.
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";

/**
 * Accumulates the chunks of a raw video pipe (which arrive in any sizes) into whole frames
 * of exactly `frameBytes` bytes. Partial frames are kept until they are complete and are
 * never returned; each returned frame is a fresh buffer the caller owns.
 *
 * Two ways in: {@linkcode FrameAssembler.push} copies chunks that a default reader
 * returned; {@linkcode FrameAssembler.readView} and {@linkcode FrameAssembler.commit} let a
 * BYOB reader (`getReader({ mode: "byob" })`) read straight into the frame being filled,
 * so that no chunk is allocated or copied.
 *
 * @example
 * ```ts
 * import { FrameAssembler } from "./frame_assembler.ts";
 *
 * async function frames(child: Deno.ChildProcess, emit: (frame: Uint8Array) => void) {
 *   const assembler = new FrameAssembler(256 * 256 * 3);
 *   for await (const chunk of child.stdout) {
 *     for (const frame of assembler.push(chunk)) emit(frame);
 *   }
 * }
 * ```
 */
export class FrameAssembler {
  readonly #frameBytes: number;
  #current: Uint8Array;
  #filled = 0;

  /** @throws {RangeError} when `frameBytes` is not a positive integer. */
  constructor(frameBytes: number) {
    this.#frameBytes = assertPositiveInteger(frameBytes, "frameBytes", "Cannot assemble frames");
    this.#current = new Uint8Array(frameBytes);
  }

  /** The size of one frame in bytes. */
  get frameBytes(): number {
    return this.#frameBytes;
  }

  /** Bytes of the incomplete frame held back, 0 at a frame boundary. */
  get pendingBytes(): number {
    return this.#filled;
  }

  /** Adds a chunk and returns the frames it completed (often none, sometimes several). */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(this.#frameBytes - this.#filled, chunk.length - offset);
      this.#current.set(chunk.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#frameBytes) {
        frames.push(this.#current);
        this.#current = new Uint8Array(this.#frameBytes);
        this.#filled = 0;
      }
    }
    return frames;
  }

  /**
   * The unfilled rest of the current frame, for a BYOB reader's `read()`. The read
   * transfers its buffer: give what it returns to {@linkcode commit} before the next call.
   */
  readView(): Uint8Array {
    return new Uint8Array(this.#current.buffer, this.#filled, this.#frameBytes - this.#filled);
  }

  /**
   * Takes back the view a BYOB read of {@linkcode readView} returned (its bytes are the
   * frame's next bytes) and returns the frame when it is complete.
   *
   * @example
   * ```ts
   * import { FrameAssembler } from "./frame_assembler.ts";
   *
   * async function frames(child: Deno.ChildProcess, emit: (frame: Uint8Array) => void) {
   *   const assembler = new FrameAssembler(256 * 256 * 3);
   *   const reader = child.stdout.getReader({ mode: "byob" });
   *   for (;;) {
   *     const { value, done } = await reader.read(assembler.readView());
   *     if (done) break;
   *     const frame = assembler.commit(value);
   *     if (frame !== undefined) emit(frame);
   *   }
   * }
   * ```
   *
   * @throws {RangeError} when `view` is not a view of the current frame at its fill point.
   */
  commit(view: Uint8Array): Uint8Array | undefined {
    if (view.byteOffset !== this.#filled || view.buffer.byteLength !== this.#frameBytes) {
      throw new RangeError(
        "Cannot assemble frames: the view is not the one readView() gave (at byte " +
          `${this.#filled} of a ${this.#frameBytes}-byte frame)`,
      );
    }
    this.#current = new Uint8Array(view.buffer);
    this.#filled += view.byteLength;
    if (this.#filled < this.#frameBytes) return undefined;
    const frame = this.#current;
    this.#current = new Uint8Array(this.#frameBytes);
    this.#filled = 0;
    return frame;
  }

  /** Drops a partial frame (after the pipe it came from ended). */
  reset(): void {
    this.#filled = 0;
  }
}
