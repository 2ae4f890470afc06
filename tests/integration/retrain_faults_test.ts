/**
 * Retraining under faults: the service killed (SIGKILL, as a power cut would) while it
 * trains, while it promotes and while it adds a candidate, then restarted; a worse candidate
 * refused; a full disk under the frame store. The crash tests run the service as a
 * subprocess (`main.ts run`) with the real trainer (`retrain.training.steps: 2`, a random
 * teacher: about 15-40 s a training here); the others run the pipeline in-process with a
 * stand-in trainer.
 */
import { errorMessage } from "../../src/core/errors.ts";
import { join } from "node:path";
import mqtt from "mqtt";
import { createLogger } from "../../src/core/log.ts";
import type { PipelineStatus } from "../../src/core/status.ts";
import { parsePipeline } from "../../src/config/mod.ts";
import type { EfficientAdModel, Thresholds } from "../../src/model/model.ts";
import { writeProjectModel } from "../../src/model/project_format.ts";
import { syntheticModel } from "../../src/model/synthetic.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { type ReceivedMessage, TestSubscriber } from "../support/mqtt_subscriber.ts";
import { FrameStore } from "../../src/retrain/frame_store.ts";
import { ModelRegistry, REGISTRY_FILE, VERSIONS_DIR } from "../../src/retrain/registry.ts";
import { FAILPOINT_ENV } from "../../src/retrain/failpoint.ts";
import { assertEquals, assertOk } from "../assert.ts";
import { freePort, HAS_MOSQUITTO, Mosquitto } from "../support/mosquitto.ts";
import {
  findProcesses,
  killAll,
  type ProcessInfo,
  ServiceProcess,
} from "../support/service_process.ts";
import { HAS_FFMPEG } from "../support/ffmpeg.ts";

const READY = HAS_MOSQUITTO && HAS_FFMPEG;
const SKIP = READY ? "" : " (skipped: mosquitto or ffmpeg missing)";

/** Whether this process may mount a tmpfs (root, or a capable user namespace). */
const CAN_MOUNT = (() => {
  if (Deno.build.os !== "linux") return false;
  const dir = Deno.makeTempDirSync({ prefix: "mount-probe-" });
  try {
    const mounted = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
    if (mounted) {
      new Deno.Command("umount", { args: [dir], stdout: "null", stderr: "null" }).outputSync();
    }
    return mounted;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

/** Every frame a model with these thresholds scores is normal (it flags nothing). */
const FLAGS_NOTHING: Thresholds = { threshold: 1e9, min: 0, max: 1 };
/** Every frame is anomalous, normalised 1: the worst figures a model can have. */
const FLAGS_EVERYTHING: Thresholds = { threshold: -1e9, min: -1e9, max: -1e9 + 1 };

const TRAINING_TIMEOUT_MS = 240_000;

function json(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.text) as Record<string, unknown>;
}

function isModel(prefix: string, state: string, version?: string) {
  return (m: ReceivedMessage): boolean =>
    m.topic === `${prefix}/cam/model` && json(m).state === state &&
    (version === undefined || json(m).model_version === version);
}

function isScore(prefix: string, version: string) {
  return (m: ReceivedMessage): boolean =>
    m.topic === `${prefix}/cam/score` && json(m).model_version === version;
}

/** A synthetic model the pipeline takes as trained (its provenance is not `synthetic`). */
function testModel(thresholds: Thresholds, name: string): EfficientAdModel {
  const m = syntheticModel(undefined, 1);
  return { ...m, thresholds, provenance: { version: name, source: "test" } };
}

/** Publishes one MQTT command (QoS 1) and disconnects. */
async function sendCommand(url: string, topic: string, payload: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `fn` every 100 ms until it returns a value. @throws {Error} after `ms`. */
async function until<T>(fn: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`Cannot wait for ${what}: not within ${ms} ms`);
    await delay(100);
  }
}

/** `promise`, or a rejection when the service exits first; errors carry its output's end. */
async function whileRunning<T>(service: ServiceProcess, promise: Promise<T>): Promise<T> {
  const died = service.status.then((s): never => {
    throw new Error(`the service exited (code ${s.code}, signal ${s.signal ?? "none"})`);
  });
  died.catch(() => {});
  try {
    return await Promise.race([promise, died]);
  } catch (e) {
    throw new Error(
      `${errorMessage(e)}\n--- service output ---\n${service.output().slice(-4000)}`,
    );
  }
}

async function httpStatus(port: number): Promise<PipelineStatus> {
  const res = await fetch(`http://127.0.0.1:${port}/status`);
  return await res.json() as PipelineStatus;
}

interface ServiceYaml {
  readonly broker: string;
  readonly prefix: string;
  readonly httpPort: number;
  readonly storeDir: string;
}

/** Writes the pipeline file of the subprocess tests; returns its path. */
async function writePipeline(dir: string, o: ServiceYaml): Promise<string> {
  const path = join(dir, "pipeline.yaml");
  await Deno.writeTextFile(
    path,
    `cameras:
  - name: cam
    url: "lavfi:testsrc2=size=256x256:rate=4"
    fps: 1
mqtt:
  url: ${o.broker}
  client_id: ${o.prefix}-service
  topic_prefix: ${o.prefix}
  stats_interval_ms: 0
http: { enabled: true, port: ${o.httpPort} }
retrain:
  enabled: true
  store: { dir: ${JSON.stringify(o.storeDir)} }
  training: { steps: 2 }
  bootstrap: { frames: 3 }
`,
  );
  return path;
}

/** `count` RGB frames of the test scene, decoded by ffmpeg. */
async function sceneFrames(count: number): Promise<Uint8Array[]> {
  const size = 256 * 256 * 3;
  const out = await new Deno.Command("ffmpeg", {
    args: [
      ...["-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=256x256:rate=4"],
      ...["-frames:v", String(count), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertOk(out.success, new TextDecoder().decode(out.stderr));
  return Array.from({ length: count }, (_, i) => out.stdout.slice(i * size, (i + 1) * size));
}

/**
 * What an earlier run of the service would have left: a store of `frames` normal frames of
 * the scene and a registry whose current version is `model`. Returns that version.
 */
async function prepareKey(
  keyDir: string,
  model: EfficientAdModel,
  frames: number,
): Promise<string> {
  {
    await using store = await FrameStore.open(join(keyDir, "frames"));
    let seq = 0;
    for (const rgb of await sceneFrames(frames)) {
      const r = await store.add(
        {
          camera: "cam",
          seq,
          capturedAt: Date.now() - 60_000 + seq * 500,
          width: 256,
          height: 256,
          rgb,
        },
        { score: 0 },
      );
      assertOk(r.ok, "cannot prepare the store");
      seq++;
    }
  }
  const src = join(keyDir, "seed");
  await writeProjectModel(src, model);
  const registry = await ModelRegistry.open(join(keyDir, "models"));
  const id = await registry.addCandidate(src);
  await registry.promote(id, "prepared by the test");
  await Deno.remove(src, { recursive: true });
  return id;
}

async function readCurrent(modelsDir: string): Promise<unknown> {
  const state = JSON.parse(await Deno.readTextFile(join(modelsDir, REGISTRY_FILE)));
  return (state as { current: unknown }).current;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/**
 * Restarts the service on `yaml` without a failpoint and checks that it serves `version`:
 * its model message, its scores and `/status`. Stops it with SIGTERM (a clean exit).
 */
async function assertRestartServes(
  yaml: string,
  sub: TestSubscriber,
  o: { prefix: string; httpPort: number; version: string },
): Promise<void> {
  const mark = sub.messages.length;
  await using service = ServiceProcess.start(yaml);
  await whileRunning(
    service,
    sub.waitFor(isModel(o.prefix, "idle", o.version), { from: mark, timeoutMs: 90_000 }),
  );
  await whileRunning(
    service,
    sub.waitFor(isScore(o.prefix, o.version), { from: mark, count: 3, timeoutMs: 90_000 }),
  );
  const status = await httpStatus(o.httpPort);
  assertEquals(status.model.cameras, { cam: o.version });
  assertEquals(status.retrain?.map((r) => [r.key, r.servingVersion, r.learning]), [
    ["cam", o.version, false],
  ]);
  const other = sub.messages.slice(mark).filter((m) =>
    m.topic === `${o.prefix}/cam/score` && json(m).model_version !== o.version
  );
  assertEquals(other.length, 0, `scores of another model: ${other[0]?.text}`);
  const exit = await service.kill("SIGTERM");
  assertEquals(exit.code, 0, service.output().slice(-2000));
}

Deno.test({
  name: "main.ts run killed during training restarts serving the old model with its store " +
    "intact" + SKIP,
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "retrain-faults-" });
    let lingering: ProcessInfo[] = [];
    try {
      await using broker = await Mosquitto.start();
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rf1/#"] });
      const httpPort = freePort();
      const key = join(dir, "retrain", "cam");
      const yaml = await writePipeline(dir, {
        broker: broker.url,
        prefix: "rf1",
        httpPort,
        storeDir: join(dir, "retrain"),
      });
      // Phase A: bootstrap V1 with the real trainer, start a second training, kill the service.
      let v1: string;
      let framesBefore: number;
      {
        await using service = ServiceProcess.start(yaml);
        const [promoted] = await whileRunning(
          service,
          sub.waitFor(isModel("rf1", "promoted"), { timeoutMs: TRAINING_TIMEOUT_MS }),
        );
        v1 = String(json(promoted!).model_version);
        assertOk(/^\d{8}T\d{9}Z-[0-9a-f]{8}$/.test(v1), promoted!.text);
        const mark = sub.messages.length;
        await sendCommand(broker.url, "rf1/cam/set/retrain", '{"reason": "fault test"}');
        const [training] = await whileRunning(
          service,
          sub.waitFor(isModel("rf1", "training", v1), { from: mark, timeoutMs: 30_000 }),
        );
        assertEquals(json(training!).trigger, "command");
        // The trainer runs (its argv names the run's folder in the store).
        await whileRunning(
          service,
          until(() => findProcesses("main.ts", "train", key)[0], 60_000, "the trainer process"),
        );
        const status = await httpStatus(httpPort);
        assertEquals(status.retrain?.[0]?.state, "training");
        framesBefore = status.retrain?.[0]?.store.frames ?? -1;
        assertOk(framesBefore >= 3, `${framesBefore} frames in the store`);
        const children = service.descendants();
        const exit = await service.kill("SIGKILL");
        assertEquals(exit.signal, "SIGKILL");
        // The trainer (started with --exit-with-parent) and ffmpeg were its children: they
        // notice their parent is gone and exit; give them a while on a loaded machine.
        const running = () => {
          const alive = new Set(findProcesses().map((p) => `${p.pid} ${p.argv.join(" ")}`));
          return children.filter((p) => alive.has(`${p.pid} ${p.argv.join(" ")}`));
        };
        const deadline = Date.now() + 15_000;
        while (running().length > 0 && Date.now() < deadline) await delay(100);
        lingering = running();
        assertEquals(
          lingering.map((p) => p.argv.join(" ")),
          [],
          "processes of the killed service still run 15 s after it died",
        );
        assertOk(children.some((p) => p.argv.includes("train")), "no trainer among its children");
      }
      // Nothing committed was lost: the store reopens with every frame.
      {
        await using store = await FrameStore.open(join(key, "frames"));
        const stats = store.stats();
        assertOk(stats.frames >= framesBefore, `${stats.frames} < ${framesBefore} frames`);
        assertEquals(stats.recovery.missingDropped, 0, JSON.stringify(stats.recovery));
      }
      assertEquals(await readCurrent(join(key, "models")), v1);
      // The killed training's folder (its frames and checkpoint) is still there ...
      assertOk(await exists(join(key, "work")), "no work folder after the crash");
      // Phase B: the restarted service serves V1 ...
      await assertRestartServes(yaml, sub, { prefix: "rf1", httpPort, version: v1 });
      // ... and cleared what the killed training left behind.
      assertEquals(await exists(join(key, "work")), false, "the killed run's folder is left");
      const registry = await ModelRegistry.open(join(key, "models"));
      assertEquals(registry.currentId, v1);
      await using store = await FrameStore.open(join(key, "frames"));
      assertOk(store.stats().frames >= framesBefore);
    } finally {
      killAll(lingering);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * Prepares a key whose current version flags every frame (so any candidate validates as no
 * worse and is promoted), starts the service with `failpoint`, triggers a training and
 * waits for the service to kill itself. Returns V1 and the messages' mark.
 */
async function crashAt(
  failpoint: string,
  o: { dir: string; broker: string; sub: TestSubscriber; prefix: string; httpPort: number },
): Promise<{ v1: string; yaml: string; key: string; mark: number }> {
  const key = join(o.dir, "retrain", "cam");
  const v1 = await prepareKey(key, testModel(FLAGS_EVERYTHING, "flags-everything"), 5);
  const yaml = await writePipeline(o.dir, {
    broker: o.broker,
    prefix: o.prefix,
    httpPort: o.httpPort,
    storeDir: join(o.dir, "retrain"),
  });
  const mark = o.sub.messages.length;
  await using service = ServiceProcess.start(yaml, { env: { [FAILPOINT_ENV]: failpoint } });
  await whileRunning(
    service,
    o.sub.waitFor(isModel(o.prefix, "idle", v1), { from: mark, timeoutMs: 90_000 }),
  );
  await sendCommand(o.broker, `${o.prefix}/cam/set/retrain`, "");
  await whileRunning(
    service,
    o.sub.waitFor(isModel(o.prefix, "training", v1), { from: mark, timeoutMs: 30_000 }),
  );
  // It must die at the failpoint, not decide; fail at once when it decides instead.
  const decision = (m: ReceivedMessage) =>
    ["promoted", "refused", "failed"].some((s) => isModel(o.prefix, s)(m));
  const deadline = Date.now() + TRAINING_TIMEOUT_MS;
  while (!service.exited) {
    const decided = o.sub.messages.slice(mark).find(decision);
    if (decided !== undefined || Date.now() > deadline) {
      throw new Error(
        `Cannot crash at ${failpoint}: ${decided?.text ?? "the service still runs"}\n${
          service.output().slice(-4000)
        }`,
      );
    }
    await delay(100);
  }
  const exit = await service.status;
  assertEquals(exit.signal, "SIGKILL", service.output().slice(-4000));
  assertEquals(o.sub.messages.slice(mark).filter(decision).length, 0, "decided before the crash");
  return { v1, yaml, key, mark };
}

Deno.test({
  name: "main.ts run killed during promotion restarts serving the old model" + SKIP,
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "retrain-faults-" });
    try {
      await using broker = await Mosquitto.start();
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rf2/#"] });
      const httpPort = freePort();
      const o = { dir, broker: broker.url, sub, prefix: "rf2", httpPort };
      const { v1, yaml, key, mark } = await crashAt("registry:pointer:temp-written", o);
      // It died mid-promotion: the candidate was validated and added, the pointer written to
      // a temporary file, not renamed.
      const [validating] = sub.messages.slice(mark).filter(isModel("rf2", "validating", v1));
      assertOk(validating !== undefined, "no validating message");
      const v2 = String(json(validating).candidate_version);
      assertOk(v2 !== v1 && v2 !== "null", validating.text);
      const models = join(key, "models");
      assertEquals(await readCurrent(models), v1);
      assertOk((await names(models)).some((n) => n.startsWith(`${REGISTRY_FILE}.tmp-`)));
      assertOk((await names(join(models, VERSIONS_DIR))).includes(v2));
      await assertRestartServes(yaml, sub, { prefix: "rf2", httpPort, version: v1 });
      assertEquals(sub.messages.filter(isScore("rf2", v2)).length, 0, "the candidate served");
      const registry = await ModelRegistry.open(models);
      assertEquals(registry.currentId, v1);
      assertEquals(registry.previousId, undefined);
      assertEquals(registry.history().map((h) => h.id), [v1]);
      assertEquals((await names(models)).filter((n) => n.startsWith(REGISTRY_FILE)), [
        REGISTRY_FILE,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "main.ts run killed while adding a candidate restarts serving the old model" + SKIP,
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "retrain-faults-" });
    try {
      await using broker = await Mosquitto.start();
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rf3/#"] });
      const httpPort = freePort();
      const o = { dir, broker: broker.url, sub, prefix: "rf3", httpPort };
      const { v1, yaml, key, mark } = await crashAt("registry:add:copied", o);
      // It died with the candidate copied to a temporary folder, before it had an id.
      assertEquals(sub.messages.slice(mark).filter(isModel("rf3", "validating")).length, 0);
      const versions = join(key, "models", VERSIONS_DIR);
      const left = await names(versions);
      assertEquals(left.filter((n) => !n.startsWith(".tmp-")), [v1]);
      assertEquals(left.filter((n) => n.startsWith(".tmp-")).length, 1, left.join(", "));
      assertEquals(await readCurrent(join(key, "models")), v1);
      await assertRestartServes(yaml, sub, { prefix: "rf3", httpPort, version: v1 });
      // The service's open removed the half-added copy.
      assertEquals(await names(versions), [v1]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A stand-in trainer: prints progress like `train --progress-json`, then copies a ready model to --out: the
 * first model dir on its first run, the second one on every later run (a counter file).
 */
function switchingTrainer(first: string, later: string, counter: string): string[] {
  return [
    Deno.execPath(),
    "eval",
    `const a = Deno.args; const out = a[a.indexOf("--out") + 1];
let n = 0;
try { n = Number(Deno.readTextFileSync(${JSON.stringify(counter)})); } catch { n = 0; }
Deno.writeTextFileSync(${JSON.stringify(counter)}, String(n + 1));
const src = n === 0 ? ${JSON.stringify(first)} : ${JSON.stringify(later)};
console.log('{"type":"progress","step":1,"total":2,"loss":5,"eta":"1s","etaMs":1000}');
console.log('{"type":"progress","step":2,"total":2,"loss":2.5,"eta":"0s","etaMs":0}');
Deno.mkdirSync(out, { recursive: true });
for (const e of Deno.readDirSync(src)) Deno.copyFileSync(src + "/" + e.name, out + "/" + e.name);`,
  ];
}

Deno.test({
  name: "Pipeline() refuses a worse candidate, publishes why and keeps serving the old model" +
    SKIP,
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "retrain-faults-" });
    try {
      const good = join(dir, "good");
      const worse = join(dir, "worse");
      await writeProjectModel(good, { ...syntheticModel(undefined, 1), thresholds: FLAGS_NOTHING });
      // The same weights with a threshold below every score: it flags every normal frame.
      await writeProjectModel(worse, {
        ...syntheticModel(undefined, 1),
        thresholds: FLAGS_EVERYTHING,
      });
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `cameras:
  - name: cam
    url: "lavfi:testsrc2=size=256x256:rate=4"
    fps: 2
mqtt:
  url: ${broker.url}
  topic_prefix: rf4
  stats_interval_ms: 0
http: { enabled: false }
retrain:
  enabled: true
  store: { dir: ${JSON.stringify(join(dir, "retrain"))} }
  training: { steps: 2 }
  bootstrap: { frames: 3 }
`,
        "rf4.yaml",
      );
      await using sub = await TestSubscriber.connect(broker.url, { topics: ["rf4/#"] });
      await using pipeline = await Pipeline.start(config, {
        logger: createLogger({ sink: () => {} }),
        trainCommand: switchingTrainer(good, worse, join(dir, "runs")),
      });
      const [promoted] = await sub.waitFor(isModel("rf4", "promoted"), { timeoutMs: 90_000 });
      const v1 = String(json(promoted!).model_version);
      await sub.waitFor(isScore("rf4", v1), { timeoutMs: 30_000 });
      const mark = sub.messages.length;
      await sendCommand(broker.url, "rf4/cam/set/retrain", '{"reason": "try a worse model"}');
      const [refused] = await sub.waitFor(isModel("rf4", "refused"), {
        from: mark,
        timeoutMs: 60_000,
      });
      const r = json(refused!);
      assertEquals(r.model_version, v1);
      assertOk(
        typeof r.candidate_version === "string" && r.candidate_version !== v1,
        refused!.text,
      );
      assertEquals(r.trigger, "command");
      const validation = r.validation as {
        candidate: { flagged_share: number };
        current: { flagged_share: number } | null;
      };
      assertEquals(validation.candidate.flagged_share, 1);
      assertEquals(validation.current?.flagged_share, 0);
      assertOk(
        String(r.decision_reason).includes(
          "candidate flags 100 % of held-out normal frames vs 0 % for the current model",
        ),
        String(r.decision_reason),
      );
      assertEquals(
        sub.messages.slice(mark).filter(isModel("rf4", "promoted")).length,
        0,
        "the worse candidate was promoted",
      );
      // Frames scored after the refusal still carry V1.
      const after = sub.messages.length;
      await sub.waitFor((m) => m.topic === "rf4/cam/score", {
        from: after,
        count: 3,
        timeoutMs: 30_000,
      });
      const versions = new Set(
        sub.messages.slice(mark).filter((m) => m.topic === "rf4/cam/score").map((m) =>
          json(m).model_version
        ),
      );
      assertEquals([...versions], [v1]);
      assertEquals(pipeline.status().model.cameras, { cam: v1 });
      assertEquals(pipeline.status().retrain?.[0]?.servingVersion, v1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Pipeline() reports a full frame-store disk and goes on inspecting" +
    (READY ? (CAN_MOUNT ? "" : " (skipped: cannot mount a tmpfs; run as root)") : SKIP),
  ignore: !(READY && CAN_MOUNT),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "retrain-faults-" });
    // Only the frame store sits on the small (64 KiB) disk; the model registry has room.
    const storeDir = join(dir, "retrain", "cam", "frames");
    await Deno.mkdir(storeDir, { recursive: true });
    let mounted = false;
    try {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", storeDir],
        stdout: "null",
        stderr: "piped",
      }).output();
      assertOk(mount.success, new TextDecoder().decode(mount.stderr));
      mounted = true;
      const modelDir = join(dir, "model");
      await writeProjectModel(modelDir, testModel(FLAGS_NOTHING, "flags-nothing"));
      await using broker = await Mosquitto.start();
      const config = parsePipeline(
        `cameras:
  - name: cam
    url: "lavfi:testsrc2=size=256x256:rate=8"
    fps: 8
model: { path: ${JSON.stringify(modelDir)} }
mqtt:
  url: ${broker.url}
  topic_prefix: rf5
  stats_interval_ms: 0
http: { enabled: false }
retrain:
  enabled: true
  store:
    dir: ${JSON.stringify(join(dir, "retrain"))}
    quantile: 1
    min_interval_ms: 200
    event_guard_ms: 0
    duplicate_threshold: 0
`,
        "rf5.yaml",
      );
      {
        await using sub = await TestSubscriber.connect(broker.url, { topics: ["rf5/#"] });
        await using pipeline = await Pipeline.start(config, {
          logger: createLogger({ sink: () => {} }),
        });
        // model.path seeds the registry and serves from the start.
        const [idle] = await sub.waitFor(isModel("rf5", "idle"), { timeoutMs: 30_000 });
        const v1 = String(json(idle!).model_version);
        assertOk(v1 !== "null", idle!.text);
        // Kept frames (about 10 KB each) fill the disk within a few frames; then writes fail.
        const [failed] = await sub.waitFor(
          (m) => m.topic === "rf5/cam/model" && json(m).store_error !== null,
          { timeoutMs: 90_000 },
        );
        const error = String(json(failed!).store_error);
        assertOk(error.includes(storeDir), error);
        assertOk(/No space left on device|ENOSPC|os error 28/i.test(error), error);
        assertEquals(json(failed!).model_version, v1);
        const store = pipeline.status().retrain?.[0]?.store;
        assertOk(store !== undefined && store.writeErrors > 0, JSON.stringify(store));
        assertOk(store.lastError !== null, JSON.stringify(store));
        // Inspection goes on.
        const mark = sub.messages.indexOf(failed!) + 1;
        await sub.waitFor(isScore("rf5", v1), { from: mark, count: 5, timeoutMs: 30_000 });
        assertEquals(pipeline.status().model.cameras, { cam: v1 });
      }
    } finally {
      if (mounted) {
        const umount = await new Deno.Command("umount", {
          args: [storeDir],
          stdout: "null",
          stderr: "null",
        }).output();
        if (!umount.success) {
          await new Deno.Command("umount", { args: ["-l", storeDir] }).output();
        }
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
