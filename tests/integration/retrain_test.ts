/**
 * Retraining wired into the running service: a camera with no model collects normal
 * frames, trains (a stand-in trainer subprocess that writes a ready model), validates,
 * promotes, and the pipeline then scores with the new model; progress goes out on
 * `<prefix>/<camera>/model`.
 */
import { join } from "node:path";
import { createLogger } from "../../src/core/log.ts";
import { parsePipeline } from "../../src/config/mod.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { writeProjectModel } from "../../src/model/project_format.ts";
import { syntheticModel } from "../../src/model/synthetic.ts";
import { type ReceivedMessage, TestSubscriber } from "../../src/publish/testing.ts";
import { assertEquals, assertOk } from "../assert.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";

function json(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.text) as Record<string, unknown>;
}

/** A stand-in trainer: prints progress like `train`, then copies a ready model to --out. */
function fakeTrainer(modelDir: string): string[] {
  return [
    Deno.execPath(),
    "eval",
    `const a = Deno.args; const out = a[a.indexOf("--out") + 1];
console.error("info  step 1/2 loss 5.0000 ETA 1s");
console.error("info  step 2/2 loss 2.5000 ETA 0s");
Deno.mkdirSync(out, { recursive: true });
for (const e of Deno.readDirSync(${JSON.stringify(modelDir)})) {
  Deno.copyFileSync(${JSON.stringify(modelDir)} + "/" + e.name, out + "/" + e.name);
}`,
  ];
}

Deno.test({
  name: "Pipeline() bootstraps a camera's first model and serves it once promoted" +
    (HAS_MOSQUITTO && HAS_FFMPEG ? "" : " (skipped: mosquitto or ffmpeg missing)"),
  ignore: !(HAS_MOSQUITTO && HAS_FFMPEG),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const ready = join(dir, "ready");
      const trained = syntheticModel(undefined, 1);
      await writeProjectModel(ready, {
        ...trained,
        thresholds: { threshold: 1e9, min: 0, max: 1 },
      });
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `cameras:
  - name: cam
    url: "lavfi:testsrc2=size=256x256:rate=4"
    fps: 2
mqtt:
  url: ${broker.url}
  topic_prefix: rt
http: { enabled: false }
retrain:
  enabled: true
  store: { dir: ${JSON.stringify(join(dir, "retrain"))} }
  training: { steps: 2 }
  bootstrap: { frames: 3 }
`,
        "rt.yaml",
      );
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rt/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: () => {} }),
        trainCommand: fakeTrainer(ready),
      });
      const states = () => sub.on("rt/cam/model").map((m) => String(json(m).state));
      await sub.waitFor((m) => m.topic === "rt/cam/model" && json(m).state === "collecting", {
        timeoutMs: 30_000,
      });
      // While it learns, the camera is not inspected: no scores, and /status says so.
      assertEquals(pipeline.status().model.cameras?.cam, "learning");
      assertEquals(pipeline.status().retrain?.[0]?.learning, true);
      const [promoted] = await sub.waitFor(
        (m) => m.topic === "rt/cam/model" && json(m).state === "promoted",
        { timeoutMs: 60_000 },
      );
      const version = String(json(promoted!).model_version);
      assertOk(version.length > 0 && version !== "null", promoted!.text);
      for (const s of ["collecting", "training", "validating", "promoted"]) {
        assertOk(states().includes(s), `no ${s} in ${states().join(", ")}`);
      }
      // Frames scored after the swap carry the new version.
      const mark = sub.messages.length;
      const [score] = await sub.waitFor(
        (m) => m.topic === "rt/cam/score" && json(m).model_version === version,
        { from: mark, timeoutMs: 30_000 },
      );
      assertEquals(json(score!).model_version, version);
      assertEquals(
        sub.on("rt/cam/score").filter((m) => json(m).model_version !== version).length,
        0,
        "scores published while learning",
      );
      const status = pipeline.status();
      assertEquals(status.model.cameras, { cam: version });
      assertEquals(status.retrain?.map((r) => [r.key, r.servingVersion, r.learning]), [
        ["cam", version, false],
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
