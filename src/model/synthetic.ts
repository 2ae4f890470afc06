/**
 * Deterministic synthetic weights for tests and the demo: the same algorithm is written in
 * Python (`tools/fixtures/synthetic.py`) so that fixtures made there match bit for bit.
 *
 * Algorithm, per state-dict key, in the order of {@linkcode expectedStateDict}:
 * 1. `state = fnv1a32(utf8(key)) XOR ((seed * 0x9E3779B1) mod 2^32)`; if 0, use 1.
 * 2. For each element: xorshift32 (`x ^= x << 13; x ^= x >>> 17; x ^= x << 5`, all mod
 *    2^32), then `u = x / 2^32` (float64) and `value = (2u - 1) * bound` (float64),
 *    stored as float32 (round to nearest).
 * 3. `bound` is `sqrt(6 / fan_in)` for conv weights (fan_in = in * k * k), 0.05 for biases.
 * 4. `mean_std.mean`: `(2u - 1) * 0.5`; `mean_std.std`: `0.5 + u` (same stream rule).
 * 5. Quantiles are left out (set them from a fixture's meta.json when needed).
 *
 * @module
 */
import { sizeOf, tensor } from "../core/tensor.ts";
import { type EfficientAdConfig, resolveConfig } from "./config.ts";
import type { EfficientAdModel } from "./model.ts";
import { expectedStateDict } from "./architecture.ts";
import type { StateDict } from "./state_dict.ts";

/** FNV-1a 32-bit hash of a string's UTF-8 bytes. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A stream of uniform numbers in [0, 1) from xorshift32, seeded as described above. */
export function uniformStream(key: string, seed: number): () => number {
  let x = (fnv1a32(key) ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  if (x === 0) x = 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/**
 * Makes a full state dict of deterministic pseudo-random weights for a config, without
 * quantiles.
 */
export function syntheticStateDict(config: EfficientAdConfig, seed = 0): StateDict {
  const dict: StateDict = new Map();
  for (const [key, shape] of expectedStateDict(config)) {
    if (key.startsWith("quantiles.")) continue;
    const next = uniformStream(key, seed);
    const data = new Float32Array(sizeOf(shape));
    let f: (u: number) => number;
    if (key === "mean_std.mean") f = (u) => (2 * u - 1) * 0.5;
    else if (key === "mean_std.std") f = (u) => 0.5 + u;
    else if (key.endsWith(".bias")) f = (u) => (2 * u - 1) * 0.05;
    else {
      const bound = Math.sqrt(6 / (shape[1]! * shape[2]! * shape[3]!));
      f = (u) => (2 * u - 1) * bound;
    }
    for (let i = 0; i < data.length; i++) data[i] = f(next());
    dict.set(key, tensor(shape, data));
  }
  return dict;
}

/**
 * A whole untrained model with synthetic weights: for tests, benchmarks and the demo.
 * Its scores mean nothing; its provenance says so.
 */
export function syntheticModel(
  config: EfficientAdConfig = resolveConfig(),
  seed = 0,
): EfficientAdModel {
  return {
    config,
    stateDict: syntheticStateDict(config, seed),
    provenance: {
      version: `synthetic-${config.size}-seed${seed}`,
      source: "synthetic",
      notes: "untrained EfficientAD with deterministic pseudo-random weights; scores mean nothing",
    },
    resize: "bilinear",
  };
}
