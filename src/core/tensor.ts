/**
 * A dense float32 tensor in row-major (C) order.
 *
 * Image batches are NCHW, as in PyTorch and anomalib.
 *
 * @module
 */

/** A dense float32 tensor: `data.length` equals the product of `shape`. */
export interface Tensor {
  /** Dimensions, outermost first (NCHW for image batches). */
  readonly shape: readonly number[];
  /** Values in row-major order. */
  readonly data: Float32Array;
}

/** The number of elements of a shape (1 for a scalar shape `[]`). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Makes a tensor, checking that the data fits the shape.
 *
 * @throws {RangeError} when `data.length` is not the product of `shape`.
 */
export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = sizeOf(shape);
  const values = data ?? new Float32Array(n);
  if (values.length !== n) {
    throw new RangeError(
      `Cannot make tensor: shape [${shape.join(", ")}] needs ${n} values, got ${values.length}`,
    );
  }
  return { shape: [...shape], data: values };
}

/** Formats a shape as `[1, 3, 256, 256]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Returns item `index` of the outermost axis as a tensor sharing the same buffer.
 *
 * @throws {RangeError} when the index is out of range.
 */
export function item(t: Tensor, index: number): Tensor {
  const [n, ...rest] = t.shape;
  if (n === undefined || index < 0 || index >= n) {
    throw new RangeError(`Cannot take item ${index} of a tensor of shape ${formatShape(t.shape)}`);
  }
  const size = sizeOf(rest);
  return { shape: rest, data: t.data.subarray(index * size, (index + 1) * size) };
}

/**
 * Stacks tensors of equal shape along a new outermost axis.
 *
 * @throws {RangeError} when the list is empty or the shapes differ.
 */
export function stack(items: readonly Tensor[]): Tensor {
  const first = items[0];
  if (first === undefined) throw new RangeError("Cannot stack: no tensors given");
  const size = first.data.length;
  const out = new Float32Array(size * items.length);
  items.forEach((t, i) => {
    if (!sameShape(t.shape, first.shape)) {
      throw new RangeError(
        `Cannot stack: tensor ${i} has shape ${formatShape(t.shape)}, expected ${
          formatShape(first.shape)
        }`,
      );
    }
    out.set(t.data, i * size);
  });
  return { shape: [items.length, ...first.shape], data: out };
}

/** The largest absolute difference between two tensors of equal size. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.data.length !== b.data.length) {
    throw new RangeError(
      `Cannot compare tensors of shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`,
    );
  }
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    if (!(d <= m)) m = d; // NaN propagates as the maximum
  }
  return m;
}

/** The range (max - min) of a tensor's values; 0 for an empty tensor. */
export function valueRange(t: Tensor): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of t.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return t.data.length === 0 ? 0 : hi - lo;
}
