/**
 * Wires on-device retraining into the pipeline: one {@linkcode RetrainCoordinator} per store
 * key (a camera, or the cameras that share a `store_key` and so one model), fed with every
 * scored frame, driven by MQTT commands, publishing its lifecycle on
 * `<prefix>/<camera>/model`, and swapping promoted models into the inference stage between
 * batches (each key's cameras are routed to the key's model).
 *
 * - **Learning.** A key with no model in its registry, in a pipeline that serves the
 *   built-in untrained model, learns first: its cameras' frames skip inference (the
 *   untrained model's scores would mean nothing, and the CPU is the trainer's) and go to
 *   the coordinator, which collects `bootstrap.frames`, trains and promotes. The cameras are
 *   inspected from the first promotion on.
 * - **Seeding.** With a trained `model.path` (an anomalib `.pth` or a project model), an
 *   empty registry starts with that model as its first version, so that it is the baseline
 *   candidates are validated against and the target of a rollback.
 * - **One training at a time** for the whole service (a shared {@linkcode TrainingGate}).
 * - Registry directories live under `<retrain.store.dir>/<key>/` (`frames/`, `models/`,
 *   `work/`).
 *
 * @module
 */
import { formatDuration } from "../core/duration.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage } from "../core/errors.ts";
import type { Frame, Precision, ScoredFrame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import { eventReason, type RetrainEvent } from "../core/retrain_event.ts";
import type { RetrainStatus } from "../core/status.ts";
import type { ResolvedPipeline } from "../config/mod.ts";
import type { InferenceStage } from "../infer/stage.ts";
import type { MqttPublisher } from "../publish/publisher.ts";
import type { Command } from "../publish/commands.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import type { EfficientAdModel, Thresholds } from "../model/model.ts";
import { writeProjectModel } from "../model/project_format.ts";
import { servedThresholds } from "../model/thresholds.ts";
import { FrameStore } from "../retrain/frame_store.ts";
import { ModelRegistry } from "../retrain/registry.ts";
import { RetrainCoordinator } from "../retrain/coordinator.ts";
import { TrainingGate } from "../retrain/scheduler.ts";
import { defaultTrainCommand } from "../retrain/train_process.ts";
import { registryFailpoint } from "../retrain/failpoint.ts";
import { createEngine } from "../infer/create.ts";

/** Share of a run's training frames the trainer keeps for its quantiles and threshold. */
const CALIBRATION_SHARE = 0.3;

/** The project root: the trainer subprocess runs `main.ts train` from there. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Options of {@linkcode startRetraining}. */
export interface RetrainWiring {
  readonly stage: InferenceStage;
  readonly publisher: MqttPublisher;
  readonly logger: Logger;
  /** The model `model.path` names, when it is a trained EfficientAD model (for seeding). */
  readonly seed?: { readonly model: EfficientAdModel; readonly path: string };
  /** Whether the pipeline's own model is the built-in untrained one (keys then learn). */
  readonly untrained: boolean;
  /** The trainer's argv before its flags (tests pass a fake trainer). */
  readonly trainCommand?: readonly string[];
}

/** The running retraining of a pipeline. */
export interface Retraining extends AsyncDisposable {
  /** Takes a scored frame (ignored for cameras that do not retrain). */
  observe(scored: ScoredFrame): void;
  /**
   * Whether `camera`'s key is still learning its first model: its frames go to
   * {@linkcode Retraining.collect} instead of inference.
   */
  learning(camera: string): boolean;
  /** Takes a frame of a learning camera. */
  collect(frame: Frame): void;
  /** Carries out an MQTT command for its camera's key. */
  command(command: Command): void;
  /** Per key, for `/status`. */
  status(): RetrainStatus[];
}

/**
 * Starts retraining for the pipeline's retraining cameras, one coordinator per store key, or
 * returns undefined when retraining is off or no camera retrains. Each key that has a model
 * in its registry (from an earlier run) serves it at once.
 *
 * @throws {RangeError} when `retrain.training.image_size` differs from the serving model's
 * input size (frames are decoded at that size); the registries' and stores' errors.
 */
export async function startRetraining(
  config: ResolvedPipeline,
  wiring: RetrainWiring,
): Promise<Retraining | undefined> {
  const r = config.retrain;
  if (!r.enabled) return undefined;
  const enabled = new Set(config.cameras.filter((c) => c.enabled).map((c) => c.name));
  const members = r.cameras.filter((c) => c.enabled && enabled.has(c.camera));
  if (members.length === 0) return undefined;
  const [height, width] = wiring.stage.engine.inputSize;
  const t = r.training;
  if (t.imageSize !== null && (t.imageSize[0] !== height || t.imageSize[1] !== width)) {
    throw new RangeError(
      `Cannot start retraining: retrain.training.image_size ${t.imageSize[0]}x${
        t.imageSize[1]
      } differs from the serving model's input size ${height}x${width} (cameras are decoded ` +
        "at that size); remove image_size or make them equal",
    );
  }
  const byKey = new Map<string, string[]>();
  for (const m of members) byKey.set(m.storeKey, [...(byKey.get(m.storeKey) ?? []), m.camera]);
  const gate = new TrainingGate();
  const failpoint = registryFailpoint();
  const stack = new AsyncDisposableStack();
  const keys = new Map<string, Key>();
  try {
    for (const [key, cameras] of byKey) {
      keys.set(
        key,
        await startKey(key, cameras, config, wiring, { gate, failpoint, stack, height, width }),
      );
    }
    const moved = stack.move();
    const keyOf = new Map<string, Key>();
    for (const k of keys.values()) for (const c of k.cameras) keyOf.set(c, k);
    return {
      observe(scored) {
        keyOf.get(scored.frame.camera)?.coordinator.observe(scored);
      },
      learning(camera) {
        const k = keyOf.get(camera);
        return k !== undefined && wiring.untrained && k.coordinator.bootstrapping;
      },
      collect(frame) {
        keyOf.get(frame.camera)?.coordinator.collect(frame);
      },
      command(cmd) {
        const k = keyOf.get(cmd.camera);
        if (k === undefined) return;
        const c = k.coordinator;
        if (cmd.command === "mark") {
          void c.mark(cmd.label, cmd.seq).then((res) => {
            if (!res.ok) k.log.warn("mark refused", { error: res.error.message });
          });
        } else if (cmd.command === "retrain") c.retrain(cmd.reason ?? "MQTT command");
        else if (cmd.command === "cancel") c.cancel();
        else {
          void c.rollback("MQTT command").catch((e) =>
            k.log.warn("rollback refused", { error: errorMessage(e) })
          );
        }
      },
      status() {
        const precisions = wiring.stage.stats().precisions;
        return [...keys.values()].map((k) =>
          keyStatus(k, wiring.untrained, precisions[k.key] ?? null)
        );
      },
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (e) {
    await stack.disposeAsync();
    throw e;
  }
}

interface Key {
  readonly key: string;
  readonly cameras: readonly string[];
  readonly coordinator: RetrainCoordinator;
  readonly log: Logger;
}

/** `/status`'s entry of a key: the coordinator's state and its last lifecycle event. */
function keyStatus(
  k: Key,
  untrained: boolean,
  precision: Precision | null,
): RetrainStatus {
  const s = k.coordinator.status();
  const e = s.lastEvent;
  const p = s.scheduler.progress;
  return {
    key: k.key,
    cameras: k.cameras,
    state: s.state,
    learning: untrained && s.bootstrapping,
    servingVersion: s.currentVersion ?? null,
    servingPrecision: s.currentVersion !== undefined ? precision : null,
    previousVersion: s.previousVersion ?? null,
    reason: s.scheduler.trigger?.reason ?? (e !== undefined ? eventReason(e) : undefined) ?? null,
    collecting: s.state === "collecting" && e?.state === "collecting"
      ? { frames: e.collected, needed: e.needed }
      : null,
    training: s.state === "training" && p !== undefined
      ? { step: p.step, total: p.total, loss: p.loss ?? null }
      : null,
    nextDueAt: s.scheduler.nextDueAt ?? null,
    driftBaseline: s.scheduler.driftBaseline ?? null,
    runs: s.scheduler.runs,
    failures: s.scheduler.failures,
    selector: {
      offered: s.selector.offered,
      kept: s.selector.released,
      skipped: s.selector.skipped,
    },
    store: {
      frames: s.store.frames,
      bytes: s.store.bytes,
      writeErrors: s.store.writeErrors,
      lastError: s.store.lastError ?? null,
    },
    updatedAt: e?.at ?? null,
  };
}

/** One log line per lifecycle step worth a line (collecting: every 10th frame). */
function logEvent(log: Logger, e: RetrainEvent): void {
  switch (e.state) {
    case "collecting":
      if (e.collected % 10 === 0) {
        log.info("collecting frames", { frames: e.collected, needed: e.needed });
      }
      return;
    case "training":
      if (e.progress !== undefined) {
        log.info("training", {
          step: `${e.progress.step}/${e.progress.total}`,
          ...(e.progress.loss !== undefined ? { loss: e.progress.loss } : {}),
          ...(e.progress.etaMs !== undefined
            ? { eta: formatDuration(e.progress.etaMs / 1000) }
            : {}),
        });
      }
      return;
    case "validating":
      log.info("validating the candidate", { version: e.candidate });
      return;
    case "promoted":
    case "rolled_back":
      log.info(e.state === "promoted" ? "candidate promoted" : "rolled back", {
        version: e.serving,
        reason: e.decisionReason,
      });
      return;
    case "refused":
      log.warn("candidate refused", { version: e.candidate, reason: e.decisionReason });
      return;
    case "failed":
      log.warn("retraining failed", { reason: e.decisionReason });
      return;
    case "idle":
      if (e.storeError !== undefined) return; // the coordinator logged it
      if (e.cancelled) log.info("training cancelled");
  }
}

async function startKey(
  key: string,
  cameras: readonly string[],
  config: ResolvedPipeline,
  wiring: RetrainWiring,
  shared: {
    gate: TrainingGate;
    failpoint: ReturnType<typeof registryFailpoint>;
    stack: AsyncDisposableStack;
    height: number;
    width: number;
  },
): Promise<Key> {
  const r = config.retrain;
  const t = r.training;
  const { stack, height, width } = shared;
  const log = wiring.logger.child(`retrain ${key}`);
  const stage = wiring.stage;
  const base = join(r.store.dir, key);
  // What a training killed with the service left behind (its frames and checkpoints): this
  // process owns the key, nothing uses it now.
  await Deno.remove(join(base, "work"), { recursive: true }).catch(() => {});
  const store = await FrameStore.open(join(base, "frames"), {
    maxFrames: r.store.maxFrames,
    maxOperatorFrames: r.store.maxOperatorFrames,
    maxBytes: r.store.maxBytes,
    logger: log,
  });
  stack.defer(() => store.close());
  const registry = await ModelRegistry.open(join(base, "models"), {
    keep: r.promotion.keep,
    logger: log,
    ...(shared.failpoint !== undefined ? { onStep: shared.failpoint } : {}),
  });
  if (registry.currentId === undefined && wiring.seed !== undefined) {
    // The configured model becomes the first version: the baseline of every validation.
    const dir = join(base, "work", "seed");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await writeProjectModel(dir, wiring.seed.model);
    const id = await registry.addCandidate(dir);
    await registry.promote(id, `seeded from model.path ${wiring.seed.path}`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    log.info("model registry seeded with model.path", { version: id });
  }
  const extraArgs = [
    "--engine",
    t.engine,
    // An onnx step runs where retrain.training.execution_providers says, else the model's.
    ...(t.engine === "onnx"
      ? ["--providers", (t.executionProviders ?? config.model.executionProviders).join(",")]
      : []),
    // The threshold is the highest score of the calibration frames (anomalib's rule on
    // normal-only data): a new normal frame exceeds the highest of n with probability
    // 1 / (n + 1), so calibrate on more of them than train's default 10 %.
    "--holdout",
    String(CALIBRATION_SHARE),
    "--image-size",
    `${height}x${width}`,
    ...(t.teacher !== null ? ["--teacher", t.teacher] : []),
    ...(t.penaltyImages !== null ? ["--penalty-images", t.penaltyImages] : []),
    // model.precision int8 serves int8 graphs: every candidate calibrates its own (on its
    // calibration frames, with its own thresholds), and the gate validates that graph.
    ...(config.model.precision === "int8" ? ["--int8"] : []),
  ];
  const swapIn = async (engine: InferenceEngine, version: string, thresholds?: Thresholds) => {
    const old = await stage.setModel(
      engine,
      { version, ...(thresholds ? { thresholds } : {}) },
      key,
    );
    // An engine still serving another key (or the default model) stays open.
    if (old !== undefined && !stage.engines.includes(old)) await old[Symbol.asyncDispose]();
  };
  // Candidates and promoted models run where and as the pipeline's model runs (engine,
  // providers, precision).
  const m = config.model;
  const open = (model: EfficientAdModel, path: string, logger: Logger = log) =>
    createEngine({ kind: "efficientad", path, model }, {
      type: m.engine,
      executionProviders: m.executionProviders,
      ...(m.threads !== null ? { intraOpThreads: m.threads } : {}),
      precision: m.precision,
      logger,
    });
  const coordinator = new RetrainCoordinator({
    key,
    createEngine: (model, o) => open(model, `${key}@${model.provenance.version}`, o?.logger),
    precision: m.precision,
    store,
    registry,
    workDir: join(base, "work"),
    selector: {
      quantile: r.store.quantile,
      minIntervalMs: r.store.minIntervalMs,
      eventGuardMs: r.store.eventGuardMs,
      duplicateThreshold: r.store.duplicateThreshold,
    },
    triggers: r.triggers,
    train: {
      steps: t.steps,
      extraArgs,
      command: wiring.trainCommand ?? defaultTrainCommand(),
      cwd: ROOT,
    },
    gate: shared.gate,
    bootstrapFrames: r.bootstrap.frames,
    margins: r.promotion.margins,
    swap: async (engine, model) => {
      await swapIn(engine, model.version, model.thresholds);
      log.info("serving the promoted model", {
        version: model.version,
        precision: engine.precision ?? "fp32",
        cameras: cameras.join(","),
      });
    },
    publish: (e) => {
      for (const camera of cameras) wiring.publisher.publishModel(camera, e);
      logEvent(log, e);
    },
    logger: log,
  });
  stack.use(coordinator);
  // A model promoted in an earlier run (or the seed) serves this key's cameras.
  const current = await registry.current();
  if (current !== undefined) {
    const engine = await open(current.model, current.path);
    await swapIn(engine, current.id, servedThresholds(current.model, engine.precision));
    log.info("serving the registry's current model", {
      version: current.id,
      precision: engine.precision ?? "fp32",
    });
    for (const camera of cameras) {
      wiring.publisher.publishModel(camera, {
        state: "idle",
        key,
        at: Date.now(),
        serving: current.id,
        cancelled: false,
      });
    }
  } else if (wiring.untrained) {
    log.info(
      `no model learned yet: camera(s) ${cameras.join(", ")} learn their scene first ` +
        `(collect ${r.bootstrap.frames} normal frames, train ${t.steps} steps, then inspect)`,
    );
  } else {
    log.info("no model in the registry yet: model.path serves until the first retraining", {
      frames: r.bootstrap.frames,
    });
  }
  return { key, cameras, coordinator, log };
}
