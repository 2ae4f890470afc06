/**
 * Turns a validated pipeline file into the resolved pipeline: every default filled in,
 * camelCase keys, derived values (camera source kinds, the MQTT client id and URL, paths
 * made absolute), and the list of secrets to keep out of logs.
 *
 * @module
 */
import type { Precision } from "../core/frame.ts";
import { isAbsolute, resolve } from "node:path";
import type { ResizeMode, Roi } from "../core/capture.ts";
import type { ThresholdPolicy } from "../core/threshold_policy.ts";
import type { ResolvedRetrainTriggers } from "../core/retrain_triggers.ts";
import { checkPipeline } from "./check.ts";
import { ConfigError } from "./config_error.ts";
import { DEFAULTS } from "./defaults.ts";
import { type CameraFile, durationMs, type PipelineFile } from "./schema.ts";
import { type CameraSource, sourceSecrets } from "../core/source.ts";
import { urlSecrets } from "../core/redact.ts";
import { resolveSource } from "./source.ts";

/** ONNX Runtime execution providers, in the order given (`cpu` is always tried last). */
export type ExecutionProviderName = "tensorrt" | "cuda" | "webgpu" | "cpu";

/** Hardware-decode settings passed to ffmpeg before `-i`. */
export interface Hwaccel {
  /** `-hwaccel <type>` (e.g. `cuda`, `nvdec`), or null. */
  readonly type: string | null;
  /** `-c:v <decoder>` (e.g. `h264_cuvid`, `h264_nvv4l2dec`), or null. */
  readonly decoder: string | null;
  /** More input options, verbatim, after the two above. */
  readonly extraArgs: readonly string[];
}

/** One camera, resolved. */
export interface ResolvedCamera {
  /** Topic-safe name (`[a-z0-9][a-z0-9_-]*`), unique in the file. */
  readonly name: string;
  /** The source as written (after `${VAR}` substitution): may hold credentials. */
  readonly url: string;
  /** What the URL names; file paths are absolute. */
  readonly source: CameraSource;
  /** Frame-rate cap, or null for the source's own rate. */
  readonly fps: number | null;
  /** Crop in source pixels, or null for the whole frame. */
  readonly roi: Roi | null;
  /** RTSP transport (used by rtsp sources only). */
  readonly rtspTransport: "tcp" | "udp";
  /** Restart a file from the beginning when it ends (file sources; false for others). */
  readonly loop: boolean;
  /** Restart ffmpeg when no frame arrives for this long. */
  readonly stallTimeoutMs: number;
  /** Restart delays: jittered exponential from `initialMs`, capped at `maxMs`. */
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  /**
   * Where frames are resized ({@linkcode ResizeMode}), or `auto`: whatever matches the
   * model's recorded resize method, which only the loaded model tells; the pipeline
   * resolves it once the model is loaded (today `exact`, as every model records
   * `bilinear`).
   */
  readonly resize: ResizeMode | "auto";
  /** Hardware decode, or null for software decode. */
  readonly hwaccel: Hwaccel | null;
  /** A disabled camera is validated but not started. */
  readonly enabled: boolean;
}

/**
 * What a bare state dict cannot say about itself (and the shape of the built-in model when
 * there is no path); the same fields as the model loader's `ArchitectureHints`.
 */
export interface ModelHints {
  readonly size?: "s" | "m";
  readonly padding?: boolean;
  readonly padMaps?: boolean;
  /** `[height, width]`. */
  readonly imageSize?: readonly [number, number];
}

/** The model, resolved. */
export interface ResolvedModel {
  /**
   * Absolute path of the artifact, or null: the service runs a built-in UNTRAINED model
   * and must say so.
   */
  readonly path: string | null;
  readonly engine: "onnx" | "tfjs";
  readonly executionProviders: readonly ExecutionProviderName[];
  /** ONNX Runtime intra-op threads, or null for all cores. */
  readonly threads: number | null;
  /**
   * The graph that serves: `fp32`; `int8`, the model directory's int8 graph (its own
   * thresholds); `fp16`, the half-precision graph on a WebGPU adapter with `shader-f16`.
   * Either falls back to fp32 with a log line when it cannot be served.
   */
  readonly precision: Precision;
  readonly threshold: ThresholdPolicy;
  readonly hints: ModelHints;
}

/** The batcher, resolved. */
export interface ResolvedBatching {
  /** Flush when this many frames wait. */
  readonly maxBatch: number;
  /** Flush a partial batch this long after its first frame. */
  readonly maxWaitMs: number;
  /** Frames waiting per camera before the oldest is dropped (and counted). */
  readonly queuePerCamera: number;
}

/** TLS files for the broker connection (absolute paths). */
export interface ResolvedTls {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly rejectUnauthorized: boolean;
}

/** MQTT output, resolved. */
export interface ResolvedMqtt {
  /** The URL clients connect to; for the embedded broker `mqtt://<host>:<port>`. */
  readonly url: string;
  /** The embedded broker to start, or null when `url` names an external one. */
  readonly embedded: { readonly host: string; readonly port: number } | null;
  /** Given, or `efficientad-<hostname>`. */
  readonly clientId: string;
  readonly topicPrefix: string;
  readonly qos: 0 | 1 | 2;
  /** Publish `<prefix>/<camera>/status` retained. */
  readonly retainStatus: boolean;
  readonly tls: ResolvedTls | null;
  readonly username: string | null;
  /** A secret: never log it (see {@linkcode ResolvedPipeline.secrets}). */
  readonly password: string | null;
  /** Outgoing messages kept while disconnected; older ones are dropped and counted. */
  readonly queueLimit: number;
  readonly map: {
    /** Publish the map of every Nth frame; 0 = never. */
    readonly everyN: number;
    /** Publish maps of anomalous frames only. */
    readonly onlyAnomalous: boolean;
    readonly width: number;
    readonly height: number;
  };
  readonly events: {
    /** Normalised score at which an event starts. */
    readonly onThreshold: number;
    /** Normalised score below which it ends (hysteresis). */
    readonly offThreshold: number;
    /** An event must last this long before `start` is published. */
    readonly minDurationMs: number;
    /** `update` messages while an event lasts; 0 = none. */
    readonly updateIntervalMs: number;
  };
  /** `<prefix>/stats` period; 0 = never. */
  readonly statsIntervalMs: number;
}

/** The HTTP endpoint, resolved. */
export interface ResolvedHttp {
  readonly enabled: boolean;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/**
 * Where normal frames are kept for retraining (the options of `FrameStore.open` and of
 * the frame selector in `src/retrain/`).
 */
export interface ResolvedRetrainStore {
  /** Absolute; each store is the folder `<dir>/<storeKey>`. */
  readonly dir: string;
  /** Automatically collected frames kept; the oldest are evicted beyond it. */
  readonly maxFrames: number;
  /** Frames an operator marked (normal or anomalous) kept, apart from the others. */
  readonly maxOperatorFrames: number;
  /** Bytes on disk for one store; the oldest frames are evicted beyond it. */
  readonly maxBytes: number;
  /** A frame is kept only when its score is at or below this quantile of recent scores. */
  readonly quantile: number;
  /** At most one frame kept per this many milliseconds. */
  readonly minIntervalMs: number;
  /** No frame kept this long before or after an anomaly event. */
  readonly eventGuardMs: number;
  /** Frames closer than this (mean absolute thumbnail difference, 0..255) are duplicates. */
  readonly duplicateThreshold: number;
}

/** When a training starts (besides the MQTT command): what `src/retrain`'s triggers take. */
export type { ResolvedRetrainTriggers };

/** One camera's retraining: whether it retrains and which store (and model) it shares. */
export interface ResolvedCameraRetrain {
  readonly camera: string;
  readonly enabled: boolean;
  /** Cameras with the same key share one store and one retrained model. */
  readonly storeKey: string;
}

/** On-device retraining, resolved. */
export interface ResolvedRetrain {
  /** The section's switch; a camera's own `retrain.enabled` wins (see `cameras`). */
  readonly enabled: boolean;
  readonly store: ResolvedRetrainStore;
  readonly triggers: ResolvedRetrainTriggers;
  readonly training: {
    readonly steps: number;
    readonly engine: "onnx" | "tfjs";
    /** Where an `onnx` training step runs, in order of preference; null: the model's. */
    readonly executionProviders: readonly ExecutionProviderName[] | null;
    /** Absolute path of the pretrained teacher, or null for the trainer's default. */
    readonly teacher: string | null;
    /** Absolute path of the penalty images folder, or null for none. */
    readonly penaltyImages: string | null;
    /** `[height, width]`, or null for the serving model's size. */
    readonly imageSize: readonly [number, number] | null;
  };
  readonly promotion: {
    /** Model versions kept on disk (the serving one included) for rollback. */
    readonly keep: number;
    /** The margins of `decidePromotion` (`src/retrain/validate.ts`), by its names. */
    readonly margins: {
      readonly flaggedFraction: number;
      readonly medianNormalized: number;
      readonly detectedFraction: number;
      readonly auroc: number;
    };
  };
  /** A camera with no model (`model.path` unset) first keeps this many normal frames and trains. */
  readonly bootstrap: { readonly frames: number };
  /** Every camera, in file order. */
  readonly cameras: readonly ResolvedCameraRetrain[];
}

/** A pipeline with every default filled in: what the service runs. */
export interface ResolvedPipeline {
  readonly version: 1;
  /** The file it was read from (or the name given to `parsePipeline`). */
  readonly file: string;
  readonly cameras: readonly ResolvedCamera[];
  readonly model: ResolvedModel;
  readonly batching: ResolvedBatching;
  readonly mqtt: ResolvedMqtt;
  readonly http: ResolvedHttp;
  readonly logging: { readonly level: "debug" | "info" | "warn" | "error" };
  readonly retrain: ResolvedRetrain;
  /**
   * Strings never to print: the MQTT password, passwords inside URLs and every value taken
   * from an environment variable. Pass them to `redact()` from `src/core/redact.ts` for
   * any text that may quote the config. Not enumerable: `JSON.stringify` and
   * `console.log` of the pipeline leave it out.
   */
  readonly secrets: readonly string[];
}

/** Options of {@linkcode resolvePipeline}. */
export interface ResolveOptions {
  /** Names the pipeline in messages and in `file`. Default `"pipeline"`. */
  readonly file?: string;
  /** Relative paths (model, file sources, TLS files) are resolved against it. Default: cwd. */
  readonly baseDir?: string;
  /** For the default client id. Default: `Deno.hostname()`, or `localhost` without permission. */
  readonly hostname?: string;
  /** Values that came from environment variables (added to `secrets`). */
  readonly secrets?: readonly string[];
}

/** This machine's host name, or `localhost` when it cannot be read. */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

function absolute(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** The embedded broker to start and the URL clients reach it at. */
function embeddedBroker(host: string, port: number): Pick<ResolvedMqtt, "url" | "embedded"> {
  return {
    url: `mqtt://${host.includes(":") ? `[${host}]` : host}:${port}`,
    embedded: { host, port },
  };
}

function resolveCamera(c: CameraFile, baseDir: string): ResolvedCamera {
  const parsed = resolveSource(c.url, baseDir);
  // The schema has checked the URL already.
  if (!parsed.ok) throw new Error(`Cannot resolve camera ${c.name}: ${parsed.message}`);
  const d = DEFAULTS.camera;
  const hw = c.hwaccel;
  return {
    name: c.name,
    url: c.url,
    source: parsed.source,
    fps: c.fps ?? null,
    roi: c.roi ? { x: c.roi.x, y: c.roi.y, width: c.roi.width, height: c.roi.height } : null,
    rtspTransport: c.rtsp_transport ?? d.rtsp_transport,
    loop: parsed.source.kind === "file" ? c.loop ?? d.loop : false,
    stallTimeoutMs: c.stall_timeout_ms ?? d.stall_timeout_ms,
    backoff: {
      initialMs: c.backoff?.initial_ms ?? d.backoff.initial_ms,
      maxMs: c.backoff?.max_ms ?? d.backoff.max_ms,
    },
    resize: c.resize ?? d.resize,
    hwaccel: hw
      ? {
        type: hw.type ?? null,
        decoder: hw.decoder ?? null,
        extraArgs: [...(hw.extra_args ?? [])],
      }
      : null,
    enabled: c.enabled ?? d.enabled,
  };
}

function imageSizeOf(
  size: number | readonly [number, number] | undefined,
): readonly [number, number] | undefined {
  if (size === undefined) return undefined;
  return typeof size === "number" ? [size, size] : [size[0], size[1]];
}

function resolveRetrain(file: PipelineFile, baseDir: string): ResolvedRetrain {
  const r = file.retrain ?? {};
  const d = DEFAULTS.retrain;
  const s = r.store ?? {};
  const t = r.triggers ?? {};
  const tr = r.training ?? {};
  const m = r.promotion?.margins ?? {};
  const enabled = r.enabled ?? d.enabled;
  const imageSize = imageSizeOf(tr.image_size);
  return {
    enabled,
    store: {
      dir: absolute(baseDir, s.dir ?? d.store.dir),
      maxFrames: s.max_frames ?? d.store.max_frames,
      maxOperatorFrames: s.max_operator_frames ?? d.store.max_operator_frames,
      maxBytes: s.max_bytes ?? d.store.max_bytes,
      quantile: s.quantile ?? d.store.quantile,
      minIntervalMs: s.min_interval_ms ?? d.store.min_interval_ms,
      eventGuardMs: s.event_guard_ms ?? d.store.event_guard_ms,
      duplicateThreshold: s.duplicate_threshold ?? d.store.duplicate_threshold,
    },
    triggers: {
      intervalMs: t.interval !== undefined ? durationMs(t.interval) : null,
      dailyAt: [...new Set((t.daily_at ?? []).map(clock))].sort(),
      timeZone: t.time_zone ?? d.triggers.time_zone,
      minNewFrames: t.min_new_frames ?? null,
      drift: t.drift
        ? {
          window: t.drift.window ?? d.triggers.drift.window,
          bound: t.drift.bound ?? null,
          factor: t.drift.factor ?? null,
        }
        : null,
      cooldownMs: durationMs(t.cooldown ?? d.triggers.cooldown),
    },
    training: {
      steps: tr.steps ?? d.training.steps,
      engine: tr.engine ?? d.training.engine,
      executionProviders: tr.execution_providers ? [...tr.execution_providers] : null,
      teacher: tr.teacher !== undefined ? absolute(baseDir, tr.teacher) : null,
      penaltyImages: tr.penalty_images !== undefined ? absolute(baseDir, tr.penalty_images) : null,
      imageSize: imageSize ?? null,
    },
    promotion: {
      keep: r.promotion?.keep ?? d.promotion.keep,
      margins: {
        flaggedFraction: m.flagged ?? d.promotion.margins.flagged,
        medianNormalized: m.median_normalized ?? d.promotion.margins.median_normalized,
        detectedFraction: m.detected ?? d.promotion.margins.detected,
        auroc: m.auroc ?? d.promotion.margins.auroc,
      },
    },
    bootstrap: { frames: r.bootstrap?.frames ?? d.bootstrap.frames },
    cameras: file.cameras.map((c) => ({
      camera: c.name,
      enabled: c.retrain?.enabled ?? enabled,
      storeKey: c.retrain?.store_key ?? c.name,
    })),
  };
}

/** `"2:05"` -> `"02:05"` (the schema has checked the form). */
function clock(time: string): string {
  const [h = "", m = ""] = time.trim().split(":");
  return `${h.padStart(2, "0")}:${m}`;
}

function resolveValid(
  file: PipelineFile,
  options: ResolveOptions,
): ResolvedPipeline {
  const baseDir = options.baseDir ?? Deno.cwd();
  const m = file.model ?? {};
  const q = file.mqtt ?? {};
  const d = DEFAULTS;
  const imageSize = imageSizeOf(m.image_size);
  const hints: ModelHints = {
    ...(m.size !== undefined ? { size: m.size } : {}),
    ...(m.padding !== undefined ? { padding: m.padding } : {}),
    ...(m.pad_maps !== undefined ? { padMaps: m.pad_maps } : {}),
    ...(imageSize !== undefined ? { imageSize } : {}),
  };
  const threshold: ThresholdPolicy =
    m.threshold?.policy === "fixed" && m.threshold.value !== undefined
      ? { policy: "fixed", value: m.threshold.value }
      : { policy: "model" };
  const broker = q.url !== undefined ? { url: q.url, embedded: null } : embeddedBroker(
    q.embedded?.host ?? d.mqtt.embedded.host,
    q.embedded?.port ?? d.mqtt.embedded.port,
  );
  const clientHost = (options.hostname ?? hostName()).replace(/[^A-Za-z0-9._-]/g, "-");
  const tls = q.tls;
  const pipeline: Omit<ResolvedPipeline, "secrets"> = {
    version: 1,
    file: options.file ?? "pipeline",
    cameras: file.cameras.map((c) => resolveCamera(c, baseDir)),
    model: {
      path: m.path !== undefined ? absolute(baseDir, m.path) : null,
      engine: m.engine ?? d.model.engine,
      executionProviders: [...(m.execution_providers ?? d.model.execution_providers)],
      threads: m.threads ?? null,
      precision: m.precision ?? d.model.precision,
      threshold,
      hints,
    },
    batching: {
      maxBatch: file.batching?.max_batch ?? d.batching.max_batch,
      maxWaitMs: file.batching?.max_wait_ms ?? d.batching.max_wait_ms,
      queuePerCamera: file.batching?.queue_per_camera ?? d.batching.queue_per_camera,
    },
    mqtt: {
      url: broker.url,
      embedded: broker.embedded,
      clientId: q.client_id ?? `${d.mqtt.client_id_prefix}${clientHost}`,
      topicPrefix: q.topic_prefix ?? d.mqtt.topic_prefix,
      qos: q.qos ?? d.mqtt.qos,
      retainStatus: q.retain_status ?? d.mqtt.retain_status,
      tls: tls
        ? {
          ca: tls.ca !== undefined ? absolute(baseDir, tls.ca) : null,
          cert: tls.cert !== undefined ? absolute(baseDir, tls.cert) : null,
          key: tls.key !== undefined ? absolute(baseDir, tls.key) : null,
          rejectUnauthorized: tls.reject_unauthorized ?? d.mqtt.reject_unauthorized,
        }
        : null,
      username: q.username ?? null,
      password: q.password ?? null,
      queueLimit: q.queue_limit ?? d.mqtt.queue_limit,
      map: {
        everyN: q.map?.every_n ?? d.mqtt.map.every_n,
        onlyAnomalous: q.map?.only_anomalous ?? d.mqtt.map.only_anomalous,
        width: q.map?.width ?? d.mqtt.map.width,
        height: q.map?.height ?? d.mqtt.map.height,
      },
      events: {
        onThreshold: q.events?.on_threshold ?? d.mqtt.events.on_threshold,
        offThreshold: q.events?.off_threshold ?? d.mqtt.events.off_threshold,
        minDurationMs: q.events?.min_duration_ms ?? d.mqtt.events.min_duration_ms,
        updateIntervalMs: q.events?.update_interval_ms ?? d.mqtt.events.update_interval_ms,
      },
      statsIntervalMs: q.stats_interval_ms ?? d.mqtt.stats_interval_ms,
    },
    http: {
      enabled: file.http?.enabled ?? d.http.enabled,
      host: file.http?.host ?? d.http.host,
      port: file.http?.port ?? d.http.port,
    },
    logging: { level: file.logging?.level ?? d.logging.level },
    retrain: resolveRetrain(file, baseDir),
  };
  const secrets = new Set<string>(options.secrets ?? []);
  if (q.password !== undefined) secrets.add(q.password);
  for (const c of pipeline.cameras) for (const s of sourceSecrets(c.source)) secrets.add(s);
  for (const s of urlSecrets(q.url ?? "")) secrets.add(s);
  Object.defineProperty(pipeline, "secrets", {
    value: [...secrets].filter((s) => s !== ""),
    enumerable: false,
  });
  return pipeline as ResolvedPipeline;
}

/**
 * Validates a pipeline file given as data (no YAML, so no line numbers) and resolves it.
 * `parsePipeline` and `loadPipeline` are the way in for files; this one serves code and
 * tests that build pipelines as objects.
 *
 * @throws {ConfigError} listing every problem.
 */
export function resolvePipeline(
  file: PipelineFile,
  options: ResolveOptions = {},
): ResolvedPipeline {
  const checked = checkPipeline(file);
  if (!checked.ok) throw new ConfigError(options.file ?? "pipeline", checked.issues);
  return resolveValid(checked.file, options);
}
