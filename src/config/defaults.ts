/**
 * Every default of the pipeline file in one place: the schema checks ranges against them,
 * resolution fills them in, and `docs/pipeline.md` lists them. The stages that the pipeline
 * starts (cameras, batcher, inference, MQTT broker and publisher, HTTP) take the resolved
 * values and do not default them again; the CLI takes its engine defaults from here too.
 *
 * @module
 */

/** The defaults of a pipeline file (snake_case keys as in YAML). */
export const DEFAULTS = {
  version: 1,
  camera: {
    rtsp_transport: "tcp",
    loop: true,
    stall_timeout_ms: 5000,
    backoff: { initial_ms: 500, max_ms: 30000 },
    resize: "auto",
    enabled: true,
  },
  model: {
    engine: "onnx",
    execution_providers: ["cpu"],
    precision: "fp32",
    threshold: { policy: "model" },
  },
  batching: { max_batch: 4, max_wait_ms: 20, queue_per_camera: 2 },
  mqtt: {
    client_id_prefix: "efficientad-",
    topic_prefix: "efficientad",
    qos: 1,
    retain_status: true,
    reject_unauthorized: true,
    queue_limit: 1000,
    map: { every_n: 1, only_anomalous: false, width: 64, height: 64 },
    events: {
      on_threshold: 0.5,
      off_threshold: 0.4,
      min_duration_ms: 500,
      update_interval_ms: 1000,
    },
    stats_interval_ms: 10000,
    embedded: { host: "127.0.0.1", port: 1883 },
  },
  http: { enabled: true, host: "127.0.0.1", port: 8080 },
  logging: { level: "info" },
  // The one place of these defaults for the triggers, the frame selector's gates, the
  // promotion margins and the bootstrap: src/retrain takes them resolved and defaults none
  // of them again. (FrameStore's limits and ModelRegistry's keep still default to the same
  // values in src/retrain/frame_store.ts and registry.ts.)
  retrain: {
    enabled: false,
    store: {
      dir: "data/retrain",
      max_frames: 1000,
      max_operator_frames: 1000,
      max_bytes: 512 * 1024 * 1024,
      quantile: 0.5,
      min_interval_ms: 60_000,
      event_guard_ms: 30_000,
      duplicate_threshold: 3,
    },
    triggers: { time_zone: "utc", drift: { window: 100 }, cooldown: "10m" },
    training: { steps: 1000, engine: "onnx" },
    promotion: {
      keep: 3,
      margins: { flagged: 0.05, median_normalized: 0.1, detected: 0.1, auroc: 0.02 },
    },
    bootstrap: { frames: 50 },
  },
} as const;
