/**
 * An inference engine that does no work: it checks the batch's shape and returns constant
 * outputs of the right shapes at once. It measures what the service itself costs per frame
 * (`deno task bench:pipeline --noop`) and stands in for a real engine in tests.
 *
 * @module
 */
import { formatShape, type Tensor } from "../core/tensor.ts";
import { assertPositiveInteger } from "../core/check.ts";
import type { InferenceEngine, InferenceOutput } from "./engine.ts";

/** Options of {@linkcode NoopEngine}. */
export interface NoopEngineOptions {
  /** Input height and width. Default [256, 256]. */
  readonly inputSize?: readonly [number, number];
  /** The raw score of every frame. Default 0. */
  readonly score?: number;
  /** The value of every map pixel. Default the score. */
  readonly mapValue?: number;
}

/**
 * An {@linkcode InferenceEngine} whose `run()` returns, for N frames, an N x 1 x H x W map of
 * one constant value and N scores of another, without reading the input's values. The
 * outputs of a batch size are made once and returned again for every run of that size:
 * callers must not write into them.
 *
 * @example
 * ```ts
 * import { NoopEngine } from "./noop_engine.ts";
 *
 * await using engine = new NoopEngine({ inputSize: [8, 8], score: 0.25 });
 * const out = await engine.run({ shape: [2, 3, 8, 8], data: new Float32Array(2 * 3 * 64) });
 * out.predScore.data; // Float32Array [0.25, 0.25]
 * ```
 */
export class NoopEngine implements InferenceEngine {
  /** `noop`. */
  readonly description = "noop";
  /** Always `raw`. */
  readonly scoreKind = "raw" as const;
  /** Input height and width. */
  readonly inputSize: readonly [number, number];
  readonly #score: number;
  readonly #mapValue: number;
  readonly #outputs = new Map<number, InferenceOutput>();
  #runs = 0;
  #disposed = false;

  /** @throws {RangeError} when a size is not a positive integer. */
  constructor(options: NoopEngineOptions = {}) {
    const [h, w] = options.inputSize ?? [256, 256];
    this.inputSize = [
      assertPositiveInteger(h, "input height", "Cannot make no-op engine"),
      assertPositiveInteger(w, "input width", "Cannot make no-op engine"),
    ];
    this.#score = options.score ?? 0;
    this.#mapValue = options.mapValue ?? this.#score;
  }

  /** How many batches ran. */
  get runs(): number {
    return this.#runs;
  }

  /**
   * Returns the constant outputs for the batch's size.
   *
   * @throws {RangeError} when the batch is not N x 3 x H x W at {@linkcode inputSize} or its
   * data is shorter than that shape.
   * @throws {Error} once disposed.
   */
  run(batch: Tensor): Promise<InferenceOutput> {
    if (this.#disposed) return Promise.reject(new Error("Cannot run no-op engine: disposed"));
    const [h, w] = this.inputSize;
    const s = batch.shape;
    const n = s[0] ?? 0;
    if (
      s.length !== 4 || n < 1 || s[1] !== 3 || s[2] !== h || s[3] !== w ||
      batch.data.length < n * 3 * h * w
    ) {
      return Promise.reject(
        new RangeError(
          `Cannot run no-op engine: expected a batch N x 3 x ${h} x ${w}, got ${formatShape(s)}`,
        ),
      );
    }
    this.#runs++;
    let out = this.#outputs.get(n);
    if (out === undefined) {
      out = {
        anomalyMap: { shape: [n, 1, h, w], data: new Float32Array(n * h * w).fill(this.#mapValue) },
        predScore: { shape: [n, 1], data: new Float32Array(n).fill(this.#score) },
      };
      this.#outputs.set(n, out);
    }
    return Promise.resolve(out);
  }

  /** Drops the cached outputs; later runs reject. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#disposed = true;
    this.#outputs.clear();
    return Promise.resolve();
  }
}
