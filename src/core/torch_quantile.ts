/**
 * Quantiles with `torch.quantile`'s linear interpolation, computed by selection on typed
 * arrays (no full sort), in float32 arithmetic as torch does it for float32 input.
 *
 * @example
 * ```ts
 * import { quantiles } from "./torch_quantile.ts";
 *
 * const [q90, q995] = quantiles(Float32Array.of(1, 2, 3, 4), [0.9, 0.995]);
 * ```
 *
 * @module
 */

/**
 * Rearranges `a` in place so that `a[k]` is the value it would hold if `a` were sorted
 * ascending, every element before it is `<=` it and every element after it `>=` it
 * (Hoare partitioning with a median-of-three pivot; expected linear time).
 *
 * @throws {RangeError} when `k` is outside the array.
 */
export function selectInPlace(a: Float32Array | Float64Array, k: number): number {
  if (!(k >= 0 && k < a.length) || !Number.isInteger(k)) {
    throw new RangeError(`Cannot select element ${k} of ${a.length}`);
  }
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // Median of three as pivot.
    let x = a[lo]!;
    let y = a[mid]!;
    let z = a[hi]!;
    if (x > y) [x, y] = [y, x];
    if (y > z) [y, z] = [z, y];
    if (x > y) [x, y] = [y, x];
    const pivot = y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}

/**
 * The `q`-quantiles of `values` with `torch.quantile`'s default linear interpolation
 * (float32 arithmetic as torch does it for a float32 input: rank = q * (n - 1) in float32,
 * then `torch.lerp` of the two neighbouring order statistics). `values` is not modified;
 * one copy is made for all the quantiles.
 *
 * @throws {RangeError} when `values` is empty or a `q` is outside [0, 1].
 */
export function quantiles(values: ArrayLike<number>, qs: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) throw new RangeError("Cannot compute a quantile of no values");
  for (const q of qs) {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`Cannot compute quantile ${q}: outside [0, 1]`);
  }
  const work = Float32Array.from(values);
  // Select the largest ranks first: each selection leaves [0, k] holding the smallest values,
  // so the next, lower rank only needs that prefix.
  const order = qs.map((q, i) => ({ q, i })).sort((a, b) => b.q - a.q);
  const out = new Array<number>(qs.length).fill(0);
  let end = n;
  for (const { q, i } of order) {
    const rank = Math.fround(Math.fround(q) * (n - 1));
    const below = Math.floor(rank);
    const above = Math.min(below + 1, n - 1);
    const prefix = work.subarray(0, end);
    let vAbove = 0;
    if (above !== below) {
      vAbove = selectInPlace(prefix, above);
    }
    const vBelow = selectInPlace(work.subarray(0, above !== below ? above : end), below);
    if (above === below) vAbove = vBelow;
    out[i] = lerp32(vBelow, vAbove, Math.fround(rank - below));
    end = above + 1;
  }
  return out;
}

/** The `q`-quantile of `values` (see {@linkcode quantiles}). */
export function quantile(values: ArrayLike<number>, q: number): number {
  return quantiles(values, [q])[0]!;
}

/** `torch.lerp` in float32: `a + w (b - a)` for w < 0.5, else `b - (b - a)(1 - w)`. */
function lerp32(a: number, b: number, w: number): number {
  const f = Math.fround;
  const diff = f(b - a);
  return w < 0.5 ? f(a + f(w * diff)) : f(b - f(diff * f(1 - w)));
}
