/**
 * Statistics of EfficientAD's training recipe (`../shared/SPEC-efficientad.md`, Training):
 * the teacher's per-channel mean and population std (the quantiles are in
 * `core/torch_quantile.ts`).
 *
 * @module
 */

/**
 * Accumulates the per-channel mean and population std of channels-last feature maps
 * (N x H x W x C, as tfjs gives them), in float64 as anomalib does: the sums of values and
 * of squares over batch and spatial positions.
 */
export class ChannelStats {
  readonly #sum: Float64Array;
  readonly #sumSq: Float64Array;
  #count = 0;

  /** @param channels the number of channels (the last axis). */
  constructor(readonly channels: number) {
    this.#sum = new Float64Array(channels);
    this.#sumSq = new Float64Array(channels);
  }

  /**
   * Adds channels-last values (any number of positions).
   *
   * @throws {RangeError} when the length is not a multiple of the channel count.
   */
  add(values: ArrayLike<number>): void {
    const c = this.channels;
    if (values.length % c !== 0) {
      throw new RangeError(`Cannot add ${values.length} values to statistics of ${c} channels`);
    }
    const sum = this.#sum;
    const sq = this.#sumSq;
    for (let i = 0; i < values.length; i += c) {
      for (let k = 0; k < c; k++) {
        const v = values[i + k]!;
        sum[k]! += v;
        sq[k]! += v * v;
      }
    }
    this.#count += values.length / c;
  }

  /** How many positions (batch times spatial) were added. */
  get count(): number {
    return this.#count;
  }

  /**
   * The per-channel mean and population std, as float32:
   * std = sqrt(sum_sq / n - mean^2).
   *
   * @throws {RangeError} when nothing was added.
   */
  result(): { mean: Float32Array; std: Float32Array } {
    const n = this.#count;
    if (n === 0) throw new RangeError("Cannot compute channel statistics of no values");
    const mean = new Float32Array(this.channels);
    const std = new Float32Array(this.channels);
    for (let k = 0; k < this.channels; k++) {
      const m = this.#sum[k]! / n;
      mean[k] = m;
      std[k] = Math.sqrt(Math.max(0, this.#sumSq[k]! / n - m * m));
    }
    return { mean, std };
  }
}
