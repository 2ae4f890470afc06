/**
 * "Did you mean" for unknown keys: the closest known key by edit distance, or the
 * snake_case form of a camelCase key.
 *
 * @module
 */

/**
 * Edit distance between two strings counting insertions, deletions, substitutions and
 * swaps of two neighbouring characters (optimal string alignment): `fsp` is 1 from `fps`.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known key a mistyped key most likely meant, or `undefined` when none is close:
 * `fsp` -> `fps`, `maxBatch` -> `max_batch`, `treshold` -> `threshold`.
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const snake = key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
  if (known.includes(snake)) return snake;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(snake, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const allowed = Math.max(1, Math.floor(Math.min(snake.length, (best ?? "").length) / 3));
  return bestDistance <= allowed ? best : undefined;
}
