/**
 * The one place that wires the stages together (README: "life of a frame"):
 *
 * cameras (ffmpeg) -> batcher -> inference -> latency tap -> MQTT publisher
 *
 * With retraining on, the frames of cameras whose store key is still learning its first
 * model go from the camera to retraining instead of the batcher, and the tap hands every
 * scored frame to retraining.
 *
 * Start order: broker (embedded when no URL is configured), model and engine, publisher,
 * HTTP, batcher and inference, cameras last. Shutdown runs in reverse, producers first, so
 * frames in flight drain into the publisher before it closes.
 *
 * Backpressure by edge: camera -> batcher never blocks (oldest waiting frame per camera
 * dropped and counted); batcher -> inference is pull-based (one batch in flight while the
 * next fills); inference -> publisher never blocks on the network (the publisher queues,
 * bounded, and counts drops).
 *
 * @module
 */
import type { ResizeMode } from "../core/capture.ts";
import type { CameraStatus, Frame, ScoredFrame } from "../core/frame.ts";
import type { Logger } from "../core/log.ts";
import { RollingPercentiles } from "../core/percentiles.ts";
import { redact } from "../core/redact.ts";
import type { PipelineStatus } from "../core/status.ts";
import {
  learningNotice,
  learningPlan,
  type ResolvedCamera,
  type ResolvedPipeline,
} from "../config/mod.ts";
import { Batcher } from "../batch/batcher.ts";
import { InferenceStage } from "../infer/stage.ts";
import type { Camera } from "../ingest/camera.ts";
import { ffmpegAvailable } from "../ingest/ffmpeg_available.ts";
import { FfmpegCamera } from "../ingest/ffmpeg_camera.ts";
import { SyntheticCamera } from "../ingest/synthetic_camera.ts";
import { EmbeddedBroker } from "../publish/broker.ts";
import { MqttPublisher } from "../publish/publisher.ts";
import { createHandler } from "../http/handler.ts";
import { HttpServer } from "../http/server.ts";
import type { ResizeMethod } from "../model/model.ts";
import { type LoadedModel, loadPipelineModel } from "./model_loader.ts";
import type { InferenceEngine } from "../infer/engine.ts";
import { type Retraining, startRetraining } from "./retraining_wiring.ts";
import type { Command } from "../publish/commands.ts";

/** How long shutdown waits for frames in flight to reach the publisher. */
const DRAIN_TIMEOUT_MS = 5000;

/** Options of {@linkcode Pipeline.start}. */
export interface PipelineStartOptions {
  readonly logger: Logger;
  /** Aborting stops the pipeline as `[Symbol.asyncDispose]()` does. */
  readonly signal?: AbortSignal;
  /** The retraining subprocess's argv before its flags (tests pass a fake trainer). */
  readonly trainCommand?: readonly string[];
  /**
   * An engine to serve instead of opening the configured one (benchmarks and tests: the
   * no-op engine of `infer/noop_engine.ts`); the pipeline owns it and disposes it.
   */
  readonly engine?: InferenceEngine;
}

/** A running pipeline. Dispose it (or abort its signal) to stop, producers first. */
export class Pipeline implements AsyncDisposable {
  readonly config: ResolvedPipeline;
  readonly startedAt = Date.now();
  /** Settles when the frame flow ends (all cameras closed and the publisher drained). */
  readonly done: Promise<void>;
  #stack: AsyncDisposableStack;
  #model: LoadedModel;
  #cameras: Camera[];
  #batcher: Batcher;
  #stage: InferenceStage;
  #publisher: MqttPublisher;
  #broker: EmbeddedBroker | undefined;
  #http: HttpServer | undefined;
  #retraining: Retraining | undefined;
  #latency = new RollingPercentiles(1000);
  #disposed: Promise<void> | undefined;

  private constructor(parts: {
    config: ResolvedPipeline;
    stack: AsyncDisposableStack;
    model: LoadedModel;
    cameras: Camera[];
    batcher: Batcher;
    stage: InferenceStage;
    publisher: MqttPublisher;
    broker: EmbeddedBroker | undefined;
    http: HttpServer | undefined;
    done: Promise<void>;
    retraining: Retraining | undefined;
  }) {
    this.#retraining = parts.retraining;
    this.config = parts.config;
    this.#stack = parts.stack;
    this.#model = parts.model;
    this.#cameras = parts.cameras;
    this.#batcher = parts.batcher;
    this.#stage = parts.stage;
    this.#publisher = parts.publisher;
    this.#broker = parts.broker;
    this.#http = parts.http;
    this.done = parts.done;
  }

  /** The HTTP server's address, when it runs. */
  get httpUrl(): string | undefined {
    return this.#http?.url;
  }

  /** The MQTT broker the pipeline publishes to. */
  get mqttUrl(): string {
    return this.#broker?.url ?? this.config.mqtt.url;
  }

  /** The inference stage (model swaps go through it). */
  get inference(): InferenceStage {
    return this.#stage;
  }

  /**
   * Starts every stage of a resolved pipeline.
   *
   * @throws {ModelFormatError} when the model cannot be loaded, or an error naming the
   * port when the embedded broker or HTTP server cannot listen. Nothing is left running.
   */
  static async start(config: ResolvedPipeline, options: PipelineStartOptions): Promise<Pipeline> {
    const log = options.logger;
    const stack = new AsyncDisposableStack();
    try {
      const mq = config.mqtt;
      let broker: EmbeddedBroker | undefined;
      if (mq.embedded !== null) {
        broker = stack.use(
          await EmbeddedBroker.start({
            host: mq.embedded.host,
            port: mq.embedded.port,
            logger: log.child("broker"),
          }),
        );
        log.info(
          "mqtt.url is not set: started an embedded MQTT broker; subscribe to it at " +
            `${broker.url} (topic ${mq.topicPrefix}/#)`,
        );
      }
      const notice = learningNotice(config);
      const model = await loadPipelineModel(config.model, log.child("model"), {
        plan: learningPlan(config),
        ...(notice !== undefined ? { notice } : {}),
        ...(options.engine !== undefined ? { engine: options.engine } : {}),
      });
      stack.use(model.engine);

      // Filled in below; the publisher's and HTTP server's callbacks read them later.
      const late: { running?: Pipeline; retraining?: Retraining | undefined } = {};
      const status = () => late.running?.status() ?? emptyStatus(config, model);
      const publisher = stack.use(
        new MqttPublisher({
          url: broker?.url ?? mq.url,
          clientId: mq.clientId,
          prefix: mq.topicPrefix,
          qos: mq.qos,
          retainStatus: mq.retainStatus,
          ...(broker ? { protocolVersion: broker.protocolVersion } : {}),
          ...(mq.tls
            ? {
              tls: {
                ...(mq.tls.ca ? { ca: mq.tls.ca } : {}),
                ...(mq.tls.cert ? { cert: mq.tls.cert } : {}),
                ...(mq.tls.key ? { key: mq.tls.key } : {}),
                rejectUnauthorized: mq.tls.rejectUnauthorized,
              },
            }
            : {}),
          ...(mq.username !== null ? { username: mq.username } : {}),
          ...(mq.password !== null ? { password: mq.password } : {}),
          queueLimit: mq.queueLimit,
          map: mq.map,
          events: mq.events,
          statsIntervalMs: mq.statsIntervalMs,
          stats: status,
          ...(config.retrain.enabled
            ? { onCommand: (cmd: Command) => late.retraining?.command(cmd) }
            : {}),
          logger: log.child("mqtt"),
        }),
      );

      let http: HttpServer | undefined;
      if (config.http.enabled) {
        http = stack.use(
          new HttpServer(createHandler({ status, logger: log.child("http") }), {
            hostname: config.http.host,
            port: config.http.port,
            logger: log.child("http"),
          }),
        );
      }

      const [height, width] = model.engine.inputSize;
      const cameras = config.cameras.filter((c) => c.enabled);
      const batcher = new Batcher({
        maxBatch: config.batching.maxBatch,
        maxWaitMs: config.batching.maxWaitMs,
        queuePerCamera: config.batching.queuePerCamera,
        cameras: cameras.map((c) => c.name),
        logger: log.child("batch"),
      });
      const routes = new Map<string, string>();
      if (config.retrain.enabled) {
        for (const r of config.retrain.cameras) if (r.enabled) routes.set(r.camera, r.storeKey);
      }
      const stage = new InferenceStage({
        engine: model.engine,
        routes,
        model: {
          version: model.version,
          ...(model.thresholds ? { thresholds: model.thresholds } : {}),
        },
        threshold: config.model.threshold,
        logger: log.child("infer"),
      });
      // The engines serving at shutdown (promoted models replace or join the first one).
      stack.defer(async () => {
        for (const engine of stage.engines) await engine[Symbol.asyncDispose]();
      });
      const artifact = model.artifact;
      const retraining = await startRetraining(config, {
        stage,
        publisher,
        logger: log,
        untrained: model.untrained,
        ...(artifact.kind === "efficientad" && !model.untrained && config.model.path !== null
          ? { seed: { model: artifact.model, path: config.model.path } }
          : {}),
        ...(options.trainCommand ? { trainCommand: options.trainCommand } : {}),
      });
      if (retraining) stack.use(retraining);
      late.retraining = retraining;
      // Frames of cameras still learning their first model go to retraining, not to the
      // batcher: they are diverted where they arrive, so that the batcher -> inference
      // edge stays pull-based (no batch is taken early).
      const intake = (): WritableStream<Frame> =>
        retraining === undefined ? batcher.writable() : new WritableStream<Frame>({
          write(frame) {
            if (retraining.learning(frame.camera)) retraining.collect(frame);
            else batcher.push(frame);
          },
        });
      const latency = new RollingPercentiles(1000);
      const tap = new TransformStream<ScoredFrame, ScoredFrame>({
        transform(scored, controller) {
          latency.add(Date.now() - scored.frame.capturedAt);
          retraining?.observe(scored);
          controller.enqueue(scored);
        },
      });
      const done = batcher.readable.pipeThrough(stage).pipeThrough(tap)
        .pipeTo(
          publisher.writable,
        );
      // Drain after the producers stop (disposed before this, in reverse order).
      stack.defer(async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          done.catch(() => {}),
          new Promise<void>((resolve) => timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)),
        ]);
        clearTimeout(timer);
      });
      stack.use(batcher);

      const haveFfmpeg = await ffmpegAvailable();
      const started: Camera[] = [];
      for (const c of cameras) {
        let camera: Camera;
        if (!haveFfmpeg && c.source.kind === "lavfi") {
          log.warn(
            `ffmpeg is not installed: camera ${c.name} shows the built-in synthetic scene ` +
              "(a part with an injected defect one second in six) instead of its lavfi source; " +
              "install ffmpeg (Debian: apt-get install ffmpeg) for real sources",
          );
          camera = new SyntheticCamera({
            name: c.name,
            width,
            height,
            ...(c.fps !== null ? { fps: c.fps } : {}),
            logger: log,
          });
        } else {
          if (!haveFfmpeg) {
            log.error(
              `ffmpeg is not installed: camera ${c.name} cannot start; install ffmpeg ` +
                "(Debian: apt-get install ffmpeg); its status stays reconnecting",
            );
          }
          camera = new FfmpegCamera(
            cameraOptions(c, { width, height, modelResize: model.resize, config, log, publisher }),
          );
        }
        stack.use(camera);
        camera.readable.pipeTo(intake()).catch((e) => {
          log.warn(`camera ${c.name} stream ended`, { error: redact(String(e), config.secrets) });
        });
        started.push(camera);
      }
      const running = new Pipeline({
        config,
        stack: stack.move(),
        model,
        cameras: started,
        batcher,
        stage,
        publisher,
        broker,
        http,
        done,
        retraining,
      });
      late.running = running;
      running.#latency = latency;
      options.signal?.addEventListener("abort", () => void running[Symbol.asyncDispose](), {
        once: true,
      });
      log.info("pipeline running", {
        cameras: started.length,
        model: model.version,
        engine: model.engine.description,
        precision: model.engine.precision ?? "fp32",
        mqtt: redact(broker?.url ?? mq.url, config.secrets),
        ...(http ? { http: http.url } : {}),
      });
      return running;
    } catch (e) {
      await stack.disposeAsync();
      throw e;
    }
  }

  /** A snapshot of every stage's counters. */
  status(): PipelineStatus {
    const b = this.#batcher.stats();
    const inf = this.#stage.stats();
    const c = this.#publisher.counters;
    return {
      startedAt: this.startedAt,
      model: {
        version: inf.modelVersion,
        source: this.#model.source,
        engine: this.#stage.engine.description,
        precision: inf.modelPrecision,
        ...(this.#stage.engine.adapter ? { adapter: this.#stage.engine.adapter } : {}),
        untrained: this.#model.untrained,
        cameras: Object.fromEntries(
          this.#cameras.map((cam) => [
            cam.name,
            this.#retraining?.learning(cam.name)
              ? "learning"
              : this.#stage.modelFor(cam.name).version,
          ]),
        ),
        precisions: Object.fromEntries(
          this.#cameras.filter((cam) => !this.#retraining?.learning(cam.name)).map((
            cam,
          ) => [cam.name, this.#stage.precisionFor(cam.name)]),
        ),
      },
      cameras: this.#cameras.map((cam) => {
        const s: CameraStatus = cam.status();
        const dropped = b.cameras[cam.name]?.dropped ?? 0;
        return { ...s, framesDropped: s.framesDropped + dropped };
      }),
      inference: {
        batches: inf.batches,
        frames: inf.frames,
        meanBatchSize: inf.meanBatchSize,
        batchMs: inf.batchMs,
        captureToPublishMs: this.#latency.snapshot(),
      },
      ...(this.#retraining ? { retrain: this.#retraining.status() } : {}),
      mqtt: {
        url: redact(this.mqttUrl, this.config.secrets),
        embedded: this.#broker !== undefined,
        connected: c.connected,
        queued: c.queued,
        published: c.published,
        dropped: c.dropped,
      },
    };
  }

  /** Stops the pipeline: cameras first, then the batcher, then the rest. Idempotent. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#disposed ??= this.#stack.disposeAsync();
    return this.#disposed;
  }
}

function cameraOptions(
  c: ResolvedCamera,
  ctx: {
    width: number;
    height: number;
    /** How the loaded model was calibrated to be resized (for `resize: auto`). */
    modelResize: ResizeMethod;
    config: ResolvedPipeline;
    log: Logger;
    publisher: MqttPublisher;
  },
): ConstructorParameters<typeof FfmpegCamera>[0] {
  const resize = c.resize === "auto" ? resizeModeFor(ctx.modelResize) : c.resize;
  return {
    name: c.name,
    source: c.source,
    width: ctx.width,
    height: ctx.height,
    resize,
    ...(c.fps !== null ? { fps: c.fps } : {}),
    ...(c.roi !== null ? { roi: c.roi } : {}),
    ...(c.hwaccel !== null
      ? {
        hwaccel: {
          ...(c.hwaccel.type !== null ? { type: c.hwaccel.type } : {}),
          ...(c.hwaccel.decoder !== null ? { decoder: c.hwaccel.decoder } : {}),
          args: c.hwaccel.extraArgs,
        },
      }
      : {}),
    rtspTransport: c.rtspTransport,
    loop: c.loop,
    stallTimeoutMs: c.stallTimeoutMs,
    backoff: { initialMs: c.backoff.initialMs, maxMs: c.backoff.maxMs },
    logger: ctx.log.child(`camera ${c.name}`),
    onStatus: (s) => ctx.publisher.publishStatus(s),
    secrets: ctx.config.secrets,
  };
}

/**
 * What a camera's `resize: auto` means for the loaded model: the resize the model was
 * calibrated with. `bilinear` (PyTorch-style, which every model records) is reproduced
 * bit-exactly by the `exact` mode; ffmpeg's scaler would shift thresholds.
 */
function resizeModeFor(method: ResizeMethod): ResizeMode {
  switch (method) {
    case "bilinear":
      return "exact";
  }
}

function emptyStatus(config: ResolvedPipeline, model: LoadedModel): PipelineStatus {
  const zero = { p50: 0, p95: 0, p99: 0, count: 0 };
  return {
    startedAt: Date.now(),
    model: {
      version: model.version,
      source: model.source,
      engine: model.engine.description,
      precision: model.engine.precision ?? "fp32",
      ...(model.engine.adapter ? { adapter: model.engine.adapter } : {}),
      untrained: model.untrained,
    },
    cameras: [],
    inference: { batches: 0, frames: 0, meanBatchSize: 0, batchMs: zero, captureToPublishMs: zero },
    mqtt: {
      url: redact(config.mqtt.url, config.secrets),
      embedded: config.mqtt.embedded !== null,
      connected: false,
      queued: 0,
      published: 0,
      dropped: 0,
    },
  };
}
