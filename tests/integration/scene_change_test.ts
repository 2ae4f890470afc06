/**
 * The scene of a camera changes and the service keeps its model true to it, with REAL
 * training end to end (no stand-ins):
 *
 * 1. a model of scene A (a woven mesh under light, sensor noise) is trained with `train`;
 * 2. the service inspects a lavfi camera whose light brightens after 45 s (scene B), with a
 *    dark stain for 2 s in every 8 s throughout, under an operator's fixed threshold;
 * 3. the normal frames' scores rise, the drift trigger fires by itself, the service collects
 *    frames of the new scene, trains in a subprocess, validates, promotes;
 * 4. the new model's scores of normal frames fall back while the stain is still detected.
 *
 * The lavfi clock runs in real time (`-re`) and the camera takes 2 frames per second, so
 * frame `seq` was drawn at t = seq / 2 s; that is how the test knows which frames show the
 * stain. About 5 minutes on 2 cores, most of it the two trainings.
 */
import { errorMessage } from "../../src/core/errors.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "../../src/core/log.ts";
import { parsePipeline } from "../../src/config/mod.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { type ReceivedMessage, TestSubscriber } from "../support/mqtt_subscriber.ts";
import { assertOk } from "../assert.ts";
import { HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const STEPS = 40;
const FPS = 2;
/** When the light starts to change, and how long the change takes (lavfi seconds). */
const SHIFT_AT = 45;
const SHIFT_FOR = 4;
/** The operator's threshold on the raw score (the models' normal frames score ~0.05). */
const THRESHOLD = 0.15;

const SCENE = "gradients=s=256x256:r=10:c0=0x5c6670:c1=0xa9b2ba:speed=0.00001:seed=1," +
  "drawgrid=w=32:h=32:t=2:c=0x3c444c,noise=alls=8:allf=t";
const SHIFT = `eq=brightness='0.06*clip((t-${SHIFT_AT})/${SHIFT_FOR},0,1)':eval=frame`;
const STAIN = "drawbox=x=150:y=72:w=30:h=20:c=0x101214:t=fill:enable='between(mod(t,8),3,5)'";

/** lavfi time of a frame. */
const timeOf = (seq: number) => seq / FPS;
/** Well inside a stain window (its edges may go either way). */
const stained = (seq: number) => timeOf(seq) % 8 > 3.25 && timeOf(seq) % 8 < 4.75;
/** Well away from a stain window. */
const clean = (seq: number) => timeOf(seq) % 8 < 2.5 || timeOf(seq) % 8 > 5.5;

interface Score {
  readonly seq: number;
  readonly score: number;
  readonly anomalous: boolean;
  readonly version: string;
}

function json(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.text) as Record<string, unknown>;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${text.slice(-3000)}`);
  return text;
}

Deno.test({
  name: "Pipeline() retrains by itself when the scene drifts, and still finds the defect" +
    (HAS_MOSQUITTO && HAS_FFMPEG ? "" : " (skipped: mosquitto or ffmpeg missing)"),
  ignore: !(HAS_MOSQUITTO && HAS_FFMPEG),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "scene-change-" });
    try {
      // 1. Scene A's model, trained as an operator would.
      const frames = join(dir, "scene-a");
      await Deno.mkdir(frames);
      await run("ffmpeg", [
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        SCENE,
        "-t",
        "6",
        "-vf",
        "fps=4",
        join(frames, "f%03d.png"),
      ]);
      const modelA = join(dir, "model-a");
      await run(Deno.execPath(), [
        "run",
        "-A",
        "main.ts",
        "train",
        "--data",
        frames,
        "--out",
        modelA,
        "--steps",
        String(STEPS),
      ]);

      // 2. The service on the drifting scene.
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `cameras:
  - name: line
    url: ${JSON.stringify(`lavfi:${SCENE},${SHIFT},${STAIN}`)}
    fps: ${FPS}
model:
  path: ${JSON.stringify(modelA)}
  threshold: { policy: fixed, value: ${THRESHOLD} }
batching: { max_batch: 1 }
mqtt:
  url: ${broker.url}
  topic_prefix: sc
http: { enabled: false }
retrain:
  enabled: true
  store:
    dir: ${JSON.stringify(join(dir, "retrain"))}
    quantile: 1
    min_interval_ms: 400
    event_guard_ms: 600
    duplicate_threshold: 0
  triggers:
    drift: { window: 8, factor: 1.4 }
  training: { steps: ${STEPS} }
  bootstrap: { frames: 20 }
`,
        "scene-change.yaml",
      );
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["sc/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: () => {} }),
      });
      const models = () => sub.on("sc/line/model").map(json);
      const scores = (): Score[] =>
        sub.on("sc/line/score").map(json).map((m) => ({
          seq: Number(m.seq),
          score: Number(m.score),
          anomalous: m.anomalous === true,
          version: String(m.model_version),
        }));
      const story = () =>
        models().map((m) =>
          `${m.state} ${m.trigger ?? ""} ${m.trigger_reason ?? ""} ${m.decision_reason ?? ""}`
        ).join("\n");

      const [seeded] = await sub.waitFor((m) => m.topic === "sc/line/model", {
        timeoutMs: 60_000,
      });
      const versionA = String(json(seeded!).model_version);

      // 3. Retraining starts by itself, on drift, and its model is promoted.
      await sub.waitFor(
        (m) =>
          m.topic === "sc/line/model" && json(m).state === "training" &&
          json(m).trigger === "drift",
        { timeoutMs: 180_000 },
      ).catch((e) => {
        throw new Error(`${errorMessage(e)}\nmodel topic:\n${story()}`);
      });
      // A training on a saturated machine crawls (the inspection has the CPU): wait while
      // it reports steps, fail when it stops reporting.
      const [promoted] = await sub.waitFor(
        (m) =>
          m.topic === "sc/line/model" &&
          ["promoted", "refused", "failed"].includes(String(json(m).state)),
        {
          timeoutMs: 480_000,
          progress: (m) => m.topic === "sc/line/model" && json(m).state === "training",
        },
      );
      const decision = json(promoted!);
      assertOk(decision.state === "promoted", `not promoted:\n${story()}`);
      const versionB = String(decision.model_version);
      assertOk(versionB !== versionA, `${versionB} = ${versionA}`);

      // 4. Watch the new model for two stain cycles.
      const promotedAt = scores().length;
      await sub.waitFor(
        (m) => m.topic === "sc/line/score" && json(m).model_version === versionB,
        { count: 16 * FPS, timeoutMs: 120_000 },
      );
      const all = scores();
      const before = all.slice(0, promotedAt).filter((s) => s.version === versionA);
      const after = all.filter((s) => s.version === versionB);
      const sceneA = before.filter((s) => clean(s.seq) && timeOf(s.seq) < SHIFT_AT - 1);
      const sceneB = before.filter((s) => clean(s.seq) && timeOf(s.seq) > SHIFT_AT + SHIFT_FOR);
      const report = `scene A under A: ${median(sceneA.map((s) => s.score))} (${sceneA.length})` +
        `, scene B under A: ${median(sceneB.map((s) => s.score))} (${sceneB.length})` +
        `, normal under B: ${median(after.filter((s) => clean(s.seq)).map((s) => s.score))}` +
        `, stain under B: ${after.filter((s) => stained(s.seq)).map((s) => s.score.toFixed(3))}` +
        `\n${story()}`;
      assertOk(sceneA.length >= 8 && sceneB.length >= 4, report);
      // The scene change raised the normal scores ...
      assertOk(
        median(sceneB.map((s) => s.score)) > 1.4 * median(sceneA.map((s) => s.score)),
        report,
      );
      // ... the new model brings them back down, and calls them normal ...
      const normalAfter = after.filter((s) => clean(s.seq));
      assertOk(normalAfter.length >= 8, report);
      assertOk(
        median(normalAfter.map((s) => s.score)) < 0.75 * median(sceneB.map((s) => s.score)),
        report,
      );
      assertOk(normalAfter.filter((s) => s.anomalous).length <= normalAfter.length * 0.2, report);
      // ... while the stain is still detected.
      const stainAfter = after.filter((s) => stained(s.seq));
      assertOk(stainAfter.length >= 2, report);
      assertOk(stainAfter.filter((s) => s.anomalous).length >= stainAfter.length / 2, report);
      const status = pipeline.status().retrain?.[0];
      assertOk(status?.servingVersion === versionB && status.runs >= 1, JSON.stringify(status));
      console.log(report.split("\n")[0]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
