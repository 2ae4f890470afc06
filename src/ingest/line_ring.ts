/**
 * The last lines of a process's stderr, kept for diagnosis.
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";

/**
 * A ring of the last `capacity` lines of text written in arbitrary chunks (a line may span
 * chunks). Each complete line goes through `transform` (credential redaction) before it is
 * stored; empty lines are skipped. `\n`, `\r\n` and a lone `\r` all end a line.
 *
 * @example
 * ```ts
 * import { LineRing } from "./line_ring.ts";
 * import { redact } from "../core/redact.ts";
 *
 * const ring = new LineRing(50, (line) => redact(line));
 * ring.write("rtsp://u:p@cam/1: Connection refused\n");
 * ring.lines(); // ["rtsp://***:***@cam/1: Connection refused"]
 * ```
 */
export class LineRing {
  readonly #capacity: number;
  readonly #transform: (line: string) => string;
  readonly #lines: string[] = [];
  #partial = "";

  /** @throws {RangeError} when `capacity` is not a positive integer. */
  constructor(capacity: number, transform: (line: string) => string = (l) => l) {
    assertPositiveInteger(capacity, "capacity", "Cannot make line ring");
    this.#capacity = capacity;
    this.#transform = transform;
  }

  /** Adds text; complete lines are stored, a trailing partial line waits for its end. */
  write(text: string): void {
    const parts = (this.#partial + text).split(/\r\n|\r|\n/);
    this.#partial = parts.pop() ?? "";
    for (const line of parts) this.push(line);
  }

  /** Stores the partial line, if any (at the end of the stream). */
  flush(): void {
    if (this.#partial !== "") this.push(this.#partial);
    this.#partial = "";
  }

  /** Stores one complete line. */
  push(line: string): void {
    if (line.trim() === "") return;
    this.#lines.push(this.#transform(line));
    if (this.#lines.length > this.#capacity) this.#lines.shift();
  }

  /** The stored lines, oldest first (a copy). */
  lines(): string[] {
    return [...this.#lines];
  }

  /** The newest stored line, if any. */
  last(): string | undefined {
    return this.#lines.at(-1);
  }
}
