import { LineCounter, parseDocument } from "yaml";
import { assertEquals } from "../../tests/assert.ts";
import { lineOf } from "./locate.ts";

const TEXT = `version: 1
cameras:
  - name: a
    url: lavfi:testsrc2
  - name: b
    roi:
      x: 1
mqtt: { qos: 3 }
`;

function doc() {
  const counter = new LineCounter();
  return { doc: parseDocument(TEXT, { lineCounter: counter }), counter };
}

Deno.test("lineOf() finds values in mappings, lists and flow mappings", () => {
  const { doc: d, counter } = doc();
  assertEquals(lineOf({ doc: d, counter }, ["version"]), 1);
  assertEquals(lineOf({ doc: d, counter }, ["cameras", 0, "url"]), 4);
  assertEquals(lineOf({ doc: d, counter }, ["cameras", 1]), 5);
  assertEquals(lineOf({ doc: d, counter }, ["cameras", 1, "roi", "x"]), 7);
  assertEquals(lineOf({ doc: d, counter }, ["mqtt", "qos"]), 8);
});

Deno.test("lineOf() falls back to the deepest existing mapping for a missing key", () => {
  const { doc: d, counter } = doc();
  assertEquals(lineOf({ doc: d, counter }, ["cameras", 1, "url"]), 5);
  assertEquals(lineOf({ doc: d, counter }, ["cameras", 1, "roi", "width"]), 7);
});

Deno.test("lineOf() points at a key itself with key: true", () => {
  const counter = new LineCounter();
  const d = parseDocument("a:\n  b:\n    c: 1\n", { lineCounter: counter });
  assertEquals(lineOf({ doc: d, counter }, ["a", "b"], { key: true }), 2);
  assertEquals(lineOf({ doc: d, counter }, ["a", "b"]), 3);
});

Deno.test("lineOf() says line 1 for an empty file", () => {
  const counter = new LineCounter();
  const empty = parseDocument("", { lineCounter: counter });
  assertEquals(lineOf({ doc: empty, counter }, ["cameras"]), 1);
});
