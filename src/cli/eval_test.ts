import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { writeFixtureCategory } from "../eval/_test_utils.ts";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { evalCommand, type EvalSummary } from "./eval.ts";

const BOTTLE = fileURLToPath(
  new URL("../../../shared/datasets/mvtec_ad_256/bottle", import.meta.url),
);
const HAS_BOTTLE = (() => {
  try {
    return Deno.statSync(join(BOTTLE, "test")).isDirectory;
  } catch {
    return false;
  }
})();

function quiet(): { lines: string[]; log: Logger } {
  const lines: string[] = [];
  return { lines, log: createLogger({ sink: (l) => lines.push(l) }) };
}

function checkMetrics(s: EvalSummary): void {
  for (const key of ["image_auroc", "pixel_auroc", "aupro", "f1_max"] as const) {
    assertOk(s[key] >= 0 && s[key] <= 1, `${key} = ${s[key]}`);
  }
  assertOk(Number.isFinite(s.threshold), `threshold = ${s.threshold}`);
}

Deno.test("evalCommand() writes the metrics JSON and an HTML report with one row per image", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "widget");
    const images = await writeFixtureCategory(data, { good: 2, defects: { scratch: 1, dent: 1 } });
    const { lines, log } = quiet();
    const json = join(dir, "out", "eval.json");
    const report = join(dir, "out", "eval.html");
    await evalCommand(["--data", data, "--json", json, "--report", report, "--batch", "3"], log);
    assertOk(lines.some((l) => l.includes("UNTRAINED")), lines.join("\n"));
    const s = JSON.parse(await Deno.readTextFile(json)) as EvalSummary;
    checkMetrics(s);
    assertEquals(s.counts.images, images);
    assertEquals([s.counts.normal, s.counts.anomalous, s.counts.regions], [2, 2, 2]);
    assertEquals(s.counts.pixels, images * 256 * 256);
    assertEquals(s.category, "widget");
    assertEquals(s.score_kind, "raw");
    assertEquals(s.map_size, [256, 256]);
    assertEquals(Object.keys(s.per_defect).sort(), ["dent", "scratch"]);
    assertOk(s.timing.total_ms >= s.timing.inference_ms && s.timing.ms_per_image > 0);
    const html = await Deno.readTextFile(report);
    assertEquals(html.match(/<tr class="sample">/g)?.length, images);
    assertEquals(html.match(/src="data:image\/png;base64,/g)?.length, images * 3);
    assertEquals(html.match(/<svg /g)?.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evalCommand() rejects missing --data, bad --batch and a wrong layout", async () => {
  const { log } = quiet();
  await assertRejects(() => evalCommand([], log), InputError, "--data");
  await assertRejects(
    () => evalCommand(["--data", ".", "--batch", "0"], log),
    InputError,
    "Cannot use --batch 0",
  );
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(() => evalCommand(["--data", dir], log), InputError, "no test/ folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "evalCommand() runs the untrained model on MVTec bottle (../shared)" +
    (HAS_BOTTLE ? "" : ` (skipped: ${BOTTLE} is absent)`),
  ignore: !HAS_BOTTLE,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const { log } = quiet();
      const json = join(dir, "bottle.json");
      await evalCommand(["--data", BOTTLE, "--json", json], log);
      const s = JSON.parse(await Deno.readTextFile(json)) as EvalSummary;
      checkMetrics(s);
      assertEquals(s.counts.images, 83);
      console.log(
        `bottle, untrained: image AUROC ${s.image_auroc.toFixed(4)}, pixel AUROC ${
          s.pixel_auroc.toFixed(4)
        }, AU-PRO ${s.aupro.toFixed(4)}, F1-max ${s.f1_max.toFixed(4)}; ` +
          `${s.timing.ms_per_image} ms/image, metrics ${s.timing.metrics_ms} ms`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
