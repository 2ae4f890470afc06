/**
 * The folder tree follows the data flow; this test keeps the imports honest: shared code
 * never reaches up into stages, and the ONNX hot path never loads TensorFlow.js.
 */
import { join, relative } from "node:path";
import { assertEquals } from "./assert.ts";
import { ROOT } from "./parity.ts";

/** Which `src/` folders each folder may import from (besides itself). */
const ALLOWED: Record<string, string[]> = {
  core: [],
  config: ["core"],
  model: ["core"],
  image: ["core"],
  infer: ["core", "model", "image"],
  ingest: ["core", "image"],
  batch: ["core"],
  publish: ["core", "image"],
  http: ["core"],
  pipeline: [
    "core",
    "config",
    "model",
    "image",
    "infer",
    "ingest",
    "batch",
    "publish",
    "http",
    "retrain",
  ],
  eval: ["core", "model", "image", "infer"],
  quantize: ["core", "model", "infer"],
  train: ["core", "model", "image", "infer", "quantize"],
  retrain: ["core", "model", "image", "infer", "eval", "train", "quantize"],
  cli: [
    "core",
    "config",
    "model",
    "image",
    "infer",
    "pipeline",
    "eval",
    "train",
    "retrain",
    "quantize",
  ],
};

function* sourceFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* sourceFiles(p);
    // Tests and a folder's test helpers (`_test_utils.ts`) may import anything.
    else if (e.name.endsWith(".ts") && !/_test(_utils)?\.ts$/.test(e.name)) yield p;
  }
}

function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(file);
  const specs = [
    ...text.matchAll(/\bfrom\s+["']([^"']+)["']/g),
    ...text.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g),
  ];
  return specs.map((m) => m[1]!);
}

Deno.test("src/ folders import only the folders upstream of them", () => {
  const src = join(ROOT, "src");
  const problems: string[] = [];
  for (const file of sourceFiles(src)) {
    const folder = relative(src, file).split("/")[0]!;
    for (const spec of importsOf(file)) {
      if (!spec.startsWith(".")) continue;
      const target = relative(src, join(file, "..", spec)).split("/")[0]!;
      if (target !== folder && !(ALLOWED[folder] ?? []).includes(target)) {
        problems.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
  }
  assertEquals(problems, []);
});

Deno.test("src/infer/onnx never imports TensorFlow.js", () => {
  const problems: string[] = [];
  for (const file of sourceFiles(join(ROOT, "src", "infer", "onnx"))) {
    for (const spec of importsOf(file)) {
      if (spec.includes("tensorflow") || spec.includes("/tfjs/")) problems.push(`${file}: ${spec}`);
    }
  }
  assertEquals(problems, []);
});
