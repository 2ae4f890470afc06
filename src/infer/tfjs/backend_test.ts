import * as tf from "@tensorflow/tfjs-core";
import { assertEquals, assertOk, assertRejects } from "../../../tests/assert.ts";
import { createLogger } from "../../core/log.ts";
import { selectTfjsBackend, TFJS_BACKEND_ORDER } from "./backend.ts";

Deno.test("selectTfjsBackend() takes the first candidate that works and says why", async () => {
  const lines: string[] = [];
  const logger = createLogger({ sink: (line) => lines.push(line) });
  const backend = await selectTfjsBackend({ logger });
  assertEquals(tf.getBackend(), backend.name);
  const index = TFJS_BACKEND_ORDER.indexOf(backend.kind);
  assertEquals(backend.skipped.map((s) => s.kind), TFJS_BACKEND_ORDER.slice(0, index));
  for (const s of backend.skipped) {
    assertOk(s.reason.includes(`@tensorflow/${s.kind}`), `reason names the package: ${s.reason}`);
  }
  assertOk(backend.summary.startsWith(`tfjs backend ${backend.kind} (`), backend.summary);
  assertEquals(lines, [`info  ${backend.summary}`]);
  if (backend.kind === "wasm") assertOk(backend.details.startsWith("SIMD on"), backend.details);
});

Deno.test("selectTfjsBackend() is computed once for the default candidates", async () => {
  const [a, b] = await Promise.all([selectTfjsBackend(), selectTfjsBackend()]);
  assertOk(a === b, "two default selections returned different objects");
});

Deno.test("selectTfjsBackend() uses the candidates it is given, then switches back", async () => {
  const best = await selectTfjsBackend();
  try {
    const cpu = await selectTfjsBackend({ candidates: ["cpu"] });
    assertEquals([cpu.kind, cpu.name, cpu.skipped.length], ["cpu", "cpu", 0]);
    assertEquals(tf.getBackend(), "cpu");
  } finally {
    await selectTfjsBackend();
  }
  assertEquals(tf.getBackend(), best.name);
});

Deno.test("selectTfjsBackend() rejects when no candidate works", async () => {
  await assertRejects(
    () => selectTfjsBackend({ candidates: [] }),
    Error,
    "Cannot select a tfjs backend: no candidates",
  );
});
