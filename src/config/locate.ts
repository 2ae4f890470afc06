/**
 * Finds the line of a key path in a parsed YAML document, for `path (line N)` messages.
 *
 * @module
 */
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type LineCounter,
  type Node,
} from "yaml";

/** A parsed YAML document with the line counter it was parsed with. */
export interface YamlSource {
  readonly doc: Document;
  readonly counter: LineCounter;
}

/** Options of {@linkcode lineOf}. */
export interface LineOfOptions {
  /** Point at the last key itself rather than its value (for unknown keys). */
  readonly key?: boolean;
}

function startOf(node: unknown): number | undefined {
  if (node && typeof node === "object" && "range" in node) {
    const range = (node as Node).range;
    if (Array.isArray(range)) return range[0];
  }
  return undefined;
}

/**
 * The 1-based line where the value at `path` starts. When the path does not exist (a
 * missing key), the line of the deepest mapping or list that does; 1 for an empty file.
 */
export function lineOf(
  source: YamlSource,
  path: readonly PropertyKey[],
  options: LineOfOptions = {},
): number {
  const { doc, counter } = source;
  let node: unknown = doc.contents;
  let offset = startOf(node);
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) =>
        isPair(p) && String(isScalar(p.key) ? p.key.value : p.key) === String(segment)
      );
      if (pair === undefined) break;
      keyNode = pair.key;
      next = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      next = node.items[segment];
    } else break;
    const last = i === path.length - 1;
    const at = last && options.key ? startOf(keyNode) : startOf(next) ?? startOf(keyNode);
    if (at === undefined) break;
    offset = at;
    node = next;
  }
  return offset === undefined ? 1 : counter.linePos(offset).line;
}
