import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { createLogger } from "../core/log.ts";
import { readNpy } from "../core/npy.ts";
import { readImage } from "../image/decode.ts";
import { writeProjectModel } from "../model/project_format.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { assertClose, HAS_SHARED, loadOwnCase, ROOT, SHARED_S } from "../../tests/parity.ts";
import { runCli } from "./commands.ts";

function quiet(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ sink: (l) => lines.push(l) }) };
}

interface Summary {
  engine: string;
  results: { input: string; pred_score: number; score_kind: string; heatmap: string }[];
}

Deno.test("runCli(demo) scores the bundled images and says the model is untrained", async () => {
  const out = await Deno.makeTempDir();
  try {
    const { lines, log } = quiet();
    assertEquals(await runCli(["demo", "--out", out], log), 0);
    assertOk(lines.some((l) => l.includes("UNTRAINED")), lines.join("\n"));
    const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json"))) as Summary;
    assertEquals(summary.results.length, 3);
    const maps = await readNpy(join(out, "anomaly_map.npy"));
    assertEquals(maps.shape, [3, 1, 256, 256]);
    for (const r of summary.results) {
      const png = await readImage(join(out, r.heatmap));
      assertEquals([png.width, png.height], [256, 256]);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test({
  name: "runCli(predict) on anomalib's state dict writes the reference maps (both engines)",
  ignore: !HAS_SHARED,
  async fn() {
    for (const engine of ["onnx", "tfjs"]) {
      const out = await Deno.makeTempDir();
      try {
        const { log } = quiet();
        const code = await runCli([
          "predict",
          "--model",
          `${SHARED_S}model.pth`,
          "--engine",
          engine,
          "--out",
          out,
          `${SHARED_S}input.npy`,
        ], log);
        assertEquals(code, 0);
        const expected = await readNpy(`${SHARED_S}anomaly_map.npy`);
        assertClose(`${engine} anomaly_map`, await readNpy(join(out, "anomaly_map.npy")), expected);
        assertClose(
          `${engine} pred_score`,
          await readNpy(join(out, "pred_score.npy")),
          await readNpy(`${SHARED_S}pred_score.npy`),
          { rangeOf: expected },
        );
        const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json"))) as Summary;
        assertEquals(
          summary.results.map((r) => r.input),
          [0, 1, 2].map((i) => `${SHARED_S}input.npy#${i}`),
        );
        assertOk(summary.engine.startsWith(engine));
      } finally {
        await Deno.remove(out, { recursive: true });
      }
    }
  },
});

Deno.test("runCli(predict) reads a project model with thresholds and flags anomalies", async () => {
  const c = await loadOwnCase("s-padding");
  const dir = await Deno.makeTempDir();
  try {
    const modelDir = join(dir, "model");
    // Threshold between the fixture's raw score and zero: the input is anomalous.
    const score = c.expected.predScore.data[0]!;
    await writeProjectModel(modelDir, {
      ...c.model,
      thresholds: { threshold: score / 2, min: 0, max: score },
    });
    const npy = join(dir, "input.npy");
    const { encodeNpy } = await import("../core/npy.ts");
    await Deno.writeFile(npy, encodeNpy(c.input));
    const { log } = quiet();
    assertEquals(
      await runCli(["predict", "--model", modelDir, "--out", join(dir, "out"), npy], log),
      0,
    );
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "out", "summary.json"))) as {
      results: { pred_score: number; normalized_score: number; anomalous: boolean }[];
    };
    const r = summary.results[0]!;
    assertClose(
      "score",
      { shape: [1], data: Float32Array.of(r.pred_score) },
      c.expected.predScore,
      {
        rangeOf: c.expected.anomalyMap,
      },
    );
    assertEquals(r.anomalous, true);
    assertOk(Math.abs(r.normalized_score - 1) < 1e-6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runCli(export) writes a graph that ONNX Runtime runs to the same maps", async () => {
  const c = await loadOwnCase("s-rect");
  const dir = await Deno.makeTempDir();
  try {
    const modelDir = join(dir, "model");
    await writeProjectModel(modelDir, c.model);
    const file = join(dir, "model.onnx");
    const { log } = quiet();
    assertEquals(await runCli(["export", "--model", modelDir, "--out", file], log), 0);
    const session = await ort.InferenceSession.create(file);
    try {
      assertEquals(session.inputNames, ["input"]);
      const out = await session.run({
        input: new ort.Tensor("float32", c.input.data, [...c.input.shape]),
      });
      const map = out["anomaly_map"]!;
      assertClose(
        "exported anomaly_map",
        { shape: map.dims.map(Number), data: map.data as Float32Array },
        c.expected.anomalyMap,
      );
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runCli(predict) names a missing model, a teacher-only file and a bad flag", async (t) => {
  const { lines, log } = quiet();
  assertEquals(await runCli(["predict", "--model", "/nonexistent.pth", "x.png"], log), 1);
  assertOk(lines.at(-1)!.includes("/nonexistent.pth") && lines.at(-1)!.includes("no such file"));
  await t.step({
    name: "a teacher-only file (../shared)" + (HAS_SHARED ? "" : " (skipped: ../shared is absent)"),
    ignore: !HAS_SHARED,
    async fn() {
      assertEquals(await runCli(["predict", "--model", `${SHARED_S}teacher.pth`, "x.png"], log), 1);
      assertOk(lines.at(-1)!.includes("teacher network alone"), lines.at(-1));
    },
  });
  assertEquals(await runCli(["predict", "--engine", "pytorch", "x.png"], log), 1);
  assertOk(lines.at(-1)!.includes("--engine pytorch"), lines.at(-1));
  assertEquals(await runCli(["predict", "--bogus"], log), 1);
  assertEquals(await runCli(["frobnicate"], log), 2);
});

Deno.test("runCli(predict) serves an anomalib ONNX export with normalised scores", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fx = join(ROOT, "tests", "fixtures", "anomalib_onnx");
    const { log } = quiet();
    const code = await runCli(
      ["predict", "--model", join(fx, "model.onnx"), "--out", dir, join(fx, "input.npy")],
      log,
    );
    assertEquals(code, 0);
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json"))) as {
      results: { score_kind: string; anomalous: boolean }[];
    };
    assertEquals(summary.results.map((r) => r.score_kind), ["normalized", "normalized"]);
    assertEquals(summary.results.map((r) => r.anomalous), [false, true]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
