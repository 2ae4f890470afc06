import { join } from "node:path";
import { createLogger } from "../core/log.ts";
import { sha256Hex } from "../core/sha256.ts";
import { resolveConfig } from "../model/config.ts";
import { readProjectModel, writeProjectModel } from "../model/project_format.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { ROOT } from "../../tests/parity.ts";
import { exportCommand, runCli } from "./commands.ts";
import { quantizeCommand, spreadSample } from "./quantize.ts";

const DEMO = join(ROOT, "assets", "demo");

function quiet(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ sink: (l) => lines.push(l) }) };
}

/** A small model directory (16 teacher channels: fast) in a temporary folder. */
async function withModelDir(fn: (dir: string, modelDir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const modelDir = join(dir, "model");
    await writeProjectModel(modelDir, syntheticModel(resolveConfig({ teacherOutChannels: 16 })));
    await fn(dir, modelDir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("spreadSample() picks evenly spread paths, all of them when there are few", () => {
  const paths = Array.from({ length: 10 }, (_, i) => `${i}.png`);
  assertEquals(spreadSample(paths, 20), paths);
  assertEquals(spreadSample(paths, 5), ["0.png", "2.png", "4.png", "6.png", "8.png"]);
});

Deno.test("runCli(quantize) writes the int8 graph into the model dir; predict --precision int8 serves it with its own thresholds", async () => {
  await withModelDir(async (dir, modelDir) => {
    const { lines, log } = quiet();
    assertEquals(
      await runCli(
        ["quantize", "--model", modelDir, "--data", DEMO, "--frames", "2", "--threads", "1"],
        log,
      ),
      0,
      lines.join("\n"),
    );
    const model = await readProjectModel(modelDir);
    const int8 = model.int8;
    assertOk(int8 !== undefined, "model.json has no int8 block");
    assertEquals(int8.calibration.frames, 2);
    assertEquals(int8.calibration.method, "minmax");
    assertEquals(await sha256Hex(await Deno.readFile(int8.path)), int8.sha256);
    // The synthetic model had no thresholds: the int8 graph's come from its calibration.
    assertEquals(model.thresholds, undefined);
    assertOk(Number.isFinite(int8.thresholds.threshold));

    const out = join(dir, "out");
    const inputs = [...Deno.readDirSync(DEMO)].map((e) => join(DEMO, e.name)).sort();
    assertEquals(
      await runCli(
        ["predict", "--model", modelDir, "--precision", "int8", "--out", out, ...inputs],
        log,
      ),
      0,
    );
    const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json"))) as {
      engine: string;
      model_precision: string;
      results: { anomalous?: boolean }[];
    };
    assertEquals(summary.model_precision, "int8");
    assertOk(summary.engine.includes("int8"), summary.engine);
    // Judged by the int8 thresholds (the fp32 model has none: without them no verdict).
    assertOk(summary.results.every((r) => typeof r.anomalous === "boolean"));
  });
});

Deno.test("runCli(export --precision int8) writes the model's int8 graph, calibrating it first with --data", async () => {
  await withModelDir(async (dir, modelDir) => {
    const { log } = quiet();
    const out = join(dir, "int8.onnx");
    await assertRejects(
      () => exportCommand(["--model", modelDir, "--precision", "int8", "--out", out], log),
      InputError,
      "has no int8 graph; pass --data",
    );
    await exportCommand(
      ["--model", modelDir, "--precision", "int8", "--data", DEMO, "--frames", "1", "--out", out],
      log,
    );
    const int8 = (await readProjectModel(modelDir)).int8!;
    assertEquals(await Deno.readFile(out), await Deno.readFile(int8.path));
  });
});

Deno.test("quantizeCommand() names bad flags and models that cannot hold an int8 graph", async () => {
  await withModelDir(async (dir, modelDir) => {
    const { log } = quiet();
    await assertRejects(
      () => quantizeCommand(["--model", modelDir], log),
      InputError,
      "--data <folder of normal images> is required",
    );
    await assertRejects(
      () => quantizeCommand(["--model", modelDir, "--data", DEMO, "--method", "kl"], log),
      InputError,
      "Cannot use --method kl: expected minmax, percentile or entropy",
    );
    await assertRejects(
      () => quantizeCommand(["--model", modelDir, "--data", DEMO, "--percentile", "99"], log),
      InputError,
      "Cannot use --percentile without --method percentile",
    );
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    await assertRejects(
      () => quantizeCommand(["--model", modelDir, "--data", empty], log),
      InputError,
      `no PNG or JPEG images in ${empty}`,
    );
    await assertRejects(
      () => quantizeCommand(["--model", join(dir, "model.pth"), "--data", DEMO], log),
      InputError,
      "pass --out <dir>",
    );
    assertEquals((await readProjectModel(modelDir)).int8, undefined);
  });
});
