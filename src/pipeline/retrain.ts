/**
 * Wires on-device retraining into the pipeline: one {@linkcode RetrainCoordinator} for the
 * cameras that retrain, fed with every scored frame, driven by MQTT commands, publishing
 * its lifecycle on `<prefix>/<camera>/model`, and swapping promoted models into the
 * inference stage between batches.
 *
 * This version serves one model for all cameras (one inference stage), so the cameras that
 * retrain must share one store key.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ScoredFrame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import type { ResolvedPipeline } from "../config/mod.ts";
import type { InferenceStage } from "../batch/inference_stage.ts";
import type { MqttPublisher } from "../publish/publisher.ts";
import type { Command } from "../publish/commands.ts";
import type { ModelUpdate } from "../publish/payloads.ts";
import { FrameStore } from "../retrain/frame_store.ts";
import { ModelRegistry } from "../retrain/registry.ts";
import { RetrainCoordinator, type RetrainEvent } from "../retrain/coordinator.ts";
import { defaultTrainCommand } from "../retrain/train_process.ts";
import { createOnnxEngine } from "../infer/onnx/engine.ts";

/** The project root: the trainer subprocess runs `main.ts train` from there. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Options of {@linkcode startRetraining}. */
export interface RetrainWiring {
  readonly stage: InferenceStage;
  readonly publisher: MqttPublisher;
  readonly logger: Logger;
  /** The trainer's argv before its flags (tests pass a fake trainer). */
  readonly trainCommand?: readonly string[];
}

/** The running retraining of a pipeline. */
export interface Retraining extends AsyncDisposable {
  readonly key: string;
  readonly cameras: readonly string[];
  observe(scored: ScoredFrame): void;
  command(command: Command): void;
  /** Whether the cameras are still learning their first model. */
  readonly bootstrapping: boolean;
}

function toUpdate(e: RetrainEvent): ModelUpdate {
  const state = e.state === "collecting" || e.state === "training" || e.state === "validating" ||
      e.state === "promoted" || e.state === "refused" || e.state === "rolled_back" ||
      e.state === "failed" || e.state === "idle"
    ? e.state
    : "idle";
  const v = e.validation;
  return {
    state,
    at: e.at,
    ...(e.version !== undefined ? { modelVersion: e.version } : {}),
    ...(e.reason !== undefined ? { triggerReason: e.reason, decisionReason: e.reason } : {}),
    ...(e.collected !== undefined && e.needed !== undefined
      ? { collecting: { frames: e.collected, needed: e.needed } }
      : {}),
    ...(e.progress !== undefined
      ? {
        training: {
          step: e.progress.step,
          total: e.progress.total,
          ...(e.progress.loss !== undefined ? { loss: e.progress.loss } : {}),
        },
      }
      : {}),
    ...(v !== undefined
      ? {
        validation: {
          normalFrames: v.candidate.normalFrames,
          anomalousFrames: v.candidate.anomalousFrames,
          candidate: {
            flaggedShare: v.candidate.flaggedFraction,
            medianNormalizedScore: v.candidate.medianNormalized,
            ...(v.candidate.detectedFraction !== undefined
              ? { detectedShare: v.candidate.detectedFraction }
              : {}),
            ...(v.candidate.auroc !== undefined ? { auroc: v.candidate.auroc } : {}),
          },
          ...(v.current
            ? {
              current: {
                flaggedShare: v.current.flaggedFraction,
                medianNormalizedScore: v.current.medianNormalized,
                ...(v.current.detectedFraction !== undefined
                  ? { detectedShare: v.current.detectedFraction }
                  : {}),
                ...(v.current.auroc !== undefined ? { auroc: v.current.auroc } : {}),
              },
            }
            : {}),
        },
      }
      : {}),
  };
}

/**
 * Starts retraining for the pipeline's retraining cameras, or returns undefined when
 * retraining is off or no camera retrains.
 *
 * @throws {RangeError} when the retraining cameras use more than one store key.
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
  const keys = [...new Set(members.map((c) => c.storeKey))];
  if (keys.length > 1) {
    throw new RangeError(
      `Cannot start retraining: cameras use store keys ${keys.join(", ")}, but this version ` +
        "serves one model for all cameras; give the retraining cameras one store_key",
    );
  }
  const key = keys[0]!;
  const cameras = members.map((c) => c.camera);
  const log = wiring.logger.child(`retrain ${key}`);
  const base = join(r.store.dir, key);
  const stack = new AsyncDisposableStack();
  try {
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
    });
    const t = r.training;
    const extraArgs = [
      "--engine",
      t.engine,
      ...(t.teacher !== null ? ["--teacher", t.teacher] : []),
      ...(t.penaltyImages !== null ? ["--penalty-images", t.penaltyImages] : []),
      ...(t.imageSize !== null ? ["--image-size", `${t.imageSize[0]}x${t.imageSize[1]}`] : []),
    ];
    const publishAll = (e: RetrainEvent) => {
      for (const camera of cameras) wiring.publisher.publishModel(camera, toUpdate(e));
    };
    const coordinator = new RetrainCoordinator({
      key,
      store,
      registry,
      workDir: join(base, "work"),
      selector: {
        quantile: r.store.quantile,
        minIntervalMs: r.store.minIntervalMs,
        eventGuardMs: r.store.eventGuardMs,
        duplicateThreshold: r.store.duplicateThreshold,
      },
      triggers: {
        ...(r.triggers.intervalMs !== null ? { interval: r.triggers.intervalMs } : {}),
        dailyAt: r.triggers.dailyAt,
        timeZone: r.triggers.timeZone,
        ...(r.triggers.minNewFrames !== null ? { minNewFrames: r.triggers.minNewFrames } : {}),
        ...(r.triggers.drift !== null
          ? {
            drift: {
              window: r.triggers.drift.window,
              ...(r.triggers.drift.bound !== null ? { bound: r.triggers.drift.bound } : {}),
              ...(r.triggers.drift.factor !== null ? { factor: r.triggers.drift.factor } : {}),
            },
          }
          : {}),
        cooldown: r.triggers.cooldownMs,
      },
      train: {
        steps: t.steps,
        extraArgs,
        command: wiring.trainCommand ?? defaultTrainCommand(),
        cwd: ROOT,
      },
      bootstrapFrames: r.bootstrap.frames,
      margins: r.promotion.margins,
      swap: async (engine, model) => {
        const old = await wiring.stage.setModel(engine, model);
        log.info("serving the promoted model", { version: model.version });
        await old[Symbol.asyncDispose]();
      },
      publish: publishAll,
      logger: log,
    });
    stack.use(coordinator);
    // A model promoted in an earlier run serves again after a restart.
    const current = await registry.current();
    if (current !== undefined) {
      const engine = await createOnnxEngine(current.model, { logger: log });
      const old = await wiring.stage.setModel(engine, {
        version: current.id,
        ...(current.model.thresholds ? { thresholds: current.model.thresholds } : {}),
      });
      await old[Symbol.asyncDispose]();
      log.info("serving the registry's current model", { version: current.id });
    } else {
      log.info("no model learned yet: collecting normal frames first", {
        frames: r.bootstrap.frames,
        cameras: cameras.join(","),
      });
    }
    const moved = stack.move();
    const members_ = new Set(cameras);
    return {
      key,
      cameras,
      get bootstrapping() {
        return coordinator.bootstrapping;
      },
      observe(scored) {
        if (members_.has(scored.frame.camera)) coordinator.observe(scored);
      },
      command(cmd) {
        if (!members_.has(cmd.camera)) return;
        if (cmd.command === "mark") void coordinator.mark(cmd.label, cmd.seq);
        else if (cmd.command === "retrain") coordinator.retrain(cmd.reason ?? "MQTT command");
        else if (cmd.command === "cancel") coordinator.cancel();
        else {void coordinator.rollback("MQTT command").catch((e) =>
            log.warn("rollback refused", { error: (e as Error).message })
          );}
      },
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (e) {
    await stack.disposeAsync();
    throw e;
  }
}
