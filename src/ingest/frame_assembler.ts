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

  /** Drops a partial frame (after the pipe it came from ended). */
  reset(): void {
    this.#filled = 0;
  }
}
