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
import { writeInt8Graph, writeProjectModel } from "../../src/model/project_format.ts";
import { resolveConfig } from "../../src/model/config.ts";
import { buildEfficientAdGraph } from "../../src/infer/onnx/efficientad_graph.ts";
import { syntheticModel } from "../../src/model/synthetic.ts";
import { type ReceivedMessage, TestSubscriber } from "../support/mqtt_subscriber.ts";
import { assertEquals, assertOk } from "../assert.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";

function json(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.text) as Record<string, unknown>;
}

/** A stand-in trainer: prints progress like `train --progress-json`, then copies a ready model to --out. */
function fakeTrainer(modelDir: string): string[] {
  return [
    Deno.execPath(),
    "eval",
    `const a = Deno.args; const out = a[a.indexOf("--out") + 1];
console.log('{"type":"progress","step":1,"total":2,"loss":5,"eta":"1s","etaMs":1000}');
console.log('{"type":"progress","step":2,"total":2,"loss":2.5,"eta":"0s","etaMs":0}');
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

/**
 * A stand-in trainer that honours `--int8` the way `train --int8` does: with it, the model
 * it writes has an int8 block (`int8Dir`), without it none (`fp32Dir`).
 */
function int8Trainer(fp32Dir: string, int8Dir: string): string[] {
  return [
    Deno.execPath(),
    "eval",
    `const a = Deno.args; const out = a[a.indexOf("--out") + 1];
const from = a.includes("--int8") ? ${JSON.stringify(int8Dir)} : ${JSON.stringify(fp32Dir)};
console.log('{"type":"progress","step":1,"total":1,"loss":5,"eta":"0s","etaMs":0}');
Deno.mkdirSync(out, { recursive: true });
for (const e of Deno.readDirSync(from)) Deno.copyFileSync(from + "/" + e.name, out + "/" + e.name);`,
  ];
}

Deno.test({
  name:
    "Pipeline() at model.precision int8 trains with --int8 and serves the int8 graph with its own thresholds" +
    (HAS_MOSQUITTO && HAS_FFMPEG ? "" : " (skipped: mosquitto or ffmpeg missing)"),
  ignore: !(HAS_MOSQUITTO && HAS_FFMPEG),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // A small model; its fp32 graph's bytes stand in for the int8 graph.
      const model = {
        ...syntheticModel(resolveConfig({ teacherOutChannels: 8 })),
        thresholds: { threshold: 1e9, min: 0, max: 1 },
      };
      const int8Thresholds = { threshold: 2e9, min: 0, max: 1 };
      const fp32Dir = join(dir, "fp32");
      const int8Dir = join(dir, "int8");
      await writeProjectModel(fp32Dir, model);
      await writeProjectModel(int8Dir, model);
      await writeInt8Graph(int8Dir, buildEfficientAdGraph(model), {
        calibration: { method: "minmax", frames: 2, seconds: 1, createdAt: "2026-12-06T00:00:00Z" },
        quantiles: { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 },
        thresholds: int8Thresholds,
      });
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `cameras:
  - name: cam
    url: "lavfi:testsrc2=size=256x256:rate=4"
    fps: 2
model: { precision: int8, threads: 1 }
mqtt:
  url: ${broker.url}
  topic_prefix: rt8
http: { enabled: false }
retrain:
  enabled: true
  store: { dir: ${JSON.stringify(join(dir, "retrain"))} }
  training: { steps: 1 }
  bootstrap: { frames: 3 }
`,
        "rt8.yaml",
      );
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rt8/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: () => {} }),
        trainCommand: int8Trainer(fp32Dir, int8Dir),
      });
      const [decided] = await sub.waitFor(
        (m) =>
          m.topic === "rt8/cam/model" && ["promoted", "refused"].includes(String(json(m).state)),
        { timeoutMs: 60_000 },
      );
      assertEquals(json(decided!).state, "promoted", decided!.text);
      const version = String(json(decided!).model_version);
      const [score] = await sub.waitFor(
        (m) => m.topic === "rt8/cam/score" && json(m).model_version === version,
        { timeoutMs: 30_000 },
      );
      assertEquals([json(score!).model_precision, json(score!).threshold], ["int8", 2e9]);
      const status = pipeline.status();
      assertEquals(status.model.precisions, { cam: "int8" });
      assertEquals(status.retrain?.map((r) => [r.servingVersion, r.servingPrecision]), [
        [version, "int8"],
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A stand-in trainer for several store keys: copies the ready model named after the key in
 * its --data path (`<store>/<key>/work/run-N/data`), after recording when it ran.
 */
function keyedTrainer(models: Record<string, string>, log: string): string[] {
  return [
    Deno.execPath(),
    "eval",
    `const a = Deno.args; const out = a[a.indexOf("--out") + 1];
const data = a[a.indexOf("--data") + 1];
const models = ${JSON.stringify(models)};
const key = Object.keys(models).find((k) => data.includes("/" + k + "/work/"));
const started = Date.now();
console.log('{"type":"progress","step":1,"total":2,"loss":5,"eta":"1s","etaMs":1000}');
await new Promise((r) => setTimeout(r, 1500));
console.log('{"type":"progress","step":2,"total":2,"loss":2.5,"eta":"0s","etaMs":0}');
Deno.mkdirSync(out, { recursive: true });
for (const e of Deno.readDirSync(models[key])) Deno.copyFileSync(models[key] + "/" + e.name, out + "/" + e.name);
Deno.writeTextFileSync(${
      JSON.stringify(log)
    }, key + " " + started + " " + Date.now() + "\\n", { append: true });`,
  ];
}

Deno.test({
  name: "Pipeline() gives each store key its own model, training one key at a time" +
    (HAS_MOSQUITTO && HAS_FFMPEG ? "" : " (skipped: mosquitto or ffmpeg missing)"),
  ignore: !(HAS_MOSQUITTO && HAS_FFMPEG),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const models: Record<string, string> = {};
      for (const [key, seed] of [["line-a", 1], ["line-b", 2]] as const) {
        models[key] = join(dir, `ready-${key}`);
        await writeProjectModel(models[key]!, {
          ...syntheticModel(undefined, seed),
          thresholds: { threshold: 1e9, min: 0, max: 1 },
        });
      }
      const runs = join(dir, "runs.txt");
      await using broker = await Mosquitto.start();
      // Cameras a1 and a2 share line-a; b has line-b.
      const config = parsePipeline(
        `cameras:
  - name: a1
    url: "lavfi:testsrc2=size=256x256:rate=4"
    fps: 2
    retrain: { store_key: line-a }
  - name: a2
    url: "lavfi:smptebars=size=256x256:rate=4"
    fps: 2
    retrain: { store_key: line-a }
  - name: b
    url: "lavfi:mandelbrot=size=256x256:rate=4"
    fps: 2
    retrain: { store_key: line-b }
mqtt:
  url: ${broker.url}
  topic_prefix: rk
http: { enabled: false }
retrain:
  enabled: true
  store: { dir: ${JSON.stringify(join(dir, "retrain"))} }
  training: { steps: 2 }
  bootstrap: { frames: 3 }
`,
        "rk.yaml",
      );
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rk/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: () => {} }),
        trainCommand: keyedTrainer(models, runs),
      });
      const promoted = (camera: string) =>
        sub.waitFor((m) => m.topic === `rk/${camera}/model` && json(m).state === "promoted", {
          timeoutMs: 90_000,
        });
      const versions: Record<string, string> = {};
      for (const camera of ["a1", "a2", "b"]) {
        versions[camera] = String(json((await promoted(camera))[0]!).model_version);
      }
      // One model for line-a (both its cameras), another for line-b.
      assertEquals(versions.a1, versions.a2);
      assertOk(versions.a1 !== versions.b, JSON.stringify(versions));
      for (const camera of ["a1", "a2", "b"]) {
        const mark = sub.messages.length;
        const [score] = await sub.waitFor((m) => m.topic === `rk/${camera}/score`, {
          from: mark,
          timeoutMs: 30_000,
        });
        assertEquals(json(score!).model_version, versions[camera], camera);
      }
      const status = pipeline.status();
      assertEquals(status.model.cameras, versions);
      assertEquals(
        status.retrain?.map((r) => [r.key, r.cameras, r.servingVersion]),
        [["line-a", ["a1", "a2"], versions.a1!], ["line-b", ["b"], versions.b!]],
      );
      // The two trainings ran one after the other.
      const spans = (await Deno.readTextFile(runs)).trim().split("\n").map((l) => l.split(" "))
        .map(([key, start, end]) => ({ key: key!, start: Number(start), end: Number(end) }))
        .sort((x, y) => x.start - y.start);
      assertEquals(spans.map((s) => s.key).sort(), ["line-a", "line-b"]);
      assertOk(spans[0]!.end <= spans[1]!.start, JSON.stringify(spans));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
