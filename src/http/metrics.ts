/**
 * Renders a {@linkcode PipelineStatus} in the Prometheus text exposition format 0.0.4.
 *
 * Metrics (all prefixed `efficientad_`):
 *
 * | name | type | labels |
 * | --- | --- | --- |
 * | `start_time_seconds` | gauge | |
 * | `camera_online` | gauge (0/1) | `camera` |
 * | `camera_state` | gauge (1 for the current state) | `camera`, `state` |
 * | `camera_last_frame_timestamp_seconds` | gauge | `camera` |
 * | `frames_total` | counter (frames read from ffmpeg) | `camera` |
 * | `frames_dropped_total` | counter | `camera`, `stage` (`batch`: the batcher's queue was full) |
 * | `reconnects_total` | counter | `camera` |
 * | `stalls_total` | counter | `camera` |
 * | `inference_batches_total` | counter | |
 * | `inference_frames_total` | counter | |
 * | `batch_size` | summary (`_sum` frames, `_count` batches) | |
 * | `inference_latency_seconds` | summary, quantiles 0.5 / 0.95 / 0.99 (engine time per batch) | |
 * | `capture_to_publish_seconds` | summary, quantiles 0.5 / 0.95 / 0.99 (per frame) | |
 * | `mqtt_connected` | gauge (0/1) | |
 * | `mqtt_queued` | gauge | |
 * | `mqtt_published_total` | counter | |
 * | `mqtt_dropped_total` | counter | |
 * | `model_info` | gauge (always 1) | `version`, `engine`, `precision` (`fp32`, `fp16`, `int8`), `source`, `untrained` |
 *
 * Latency quantiles cover a recent window and are `NaN` while it is empty; the latency
 * summaries carry `_sum` and `_count` (since start) when the status snapshot has `sum` and
 * `total` (as {@linkcode PercentileSnapshot} does), and only quantiles otherwise.
 *
 * @module
 */
import type { CameraState } from "../core/frame.ts";
import type { PercentileSnapshot } from "../core/percentiles.ts";
import type { Percentiles, PipelineStatus } from "../core/status.ts";

/** The `Content-Type` of the exposition format this module writes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const PREFIX = "efficientad_";
const STATES: readonly CameraState[] = ["starting", "online", "reconnecting", "offline"];

type MetricType = "counter" | "gauge" | "summary";
type Labels = Readonly<Record<string, string>>;

interface Sample {
  readonly suffix?: string;
  readonly labels?: Labels;
  readonly value: number;
}

/** Formats a sample value: `NaN`, `+Inf`, `-Inf` or the shortest round-tripping decimal. */
export function formatSampleValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

function family(
  out: string[],
  name: string,
  type: MetricType,
  help: string,
  samples: readonly Sample[],
): void {
  const full = PREFIX + name;
  out.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} ${type}`);
  for (const s of samples) {
    out.push(`${full}${s.suffix ?? ""}${formatLabels(s.labels)} ${formatSampleValue(s.value)}`);
  }
}

function hasTotals(p: Percentiles): p is PercentileSnapshot {
  const q = p as Partial<PercentileSnapshot>;
  return typeof q.sum === "number" && typeof q.total === "number";
}

/** Quantile samples in seconds from millisecond percentiles, plus `_sum` / `_count` when known. */
function latencySamples(p: Percentiles): Sample[] {
  const q = (v: number) => (p.count === 0 ? Number.NaN : v / 1000);
  const samples: Sample[] = [
    { labels: { quantile: "0.5" }, value: q(p.p50) },
    { labels: { quantile: "0.95" }, value: q(p.p95) },
    { labels: { quantile: "0.99" }, value: q(p.p99) },
  ];
  if (hasTotals(p)) {
    samples.push({ suffix: "_sum", value: p.sum / 1000 }, { suffix: "_count", value: p.total });
  }
  return samples;
}

/** Renders a status snapshot as Prometheus text (format 0.0.4); see the module documentation. */
export function renderMetrics(status: PipelineStatus): string {
  const out: string[] = [];
  const cams = status.cameras;
  const perCamera = (value: (c: (typeof cams)[number]) => number, extra: Labels = {}) =>
    cams.map((c) => ({ labels: { camera: c.camera, ...extra }, value: value(c) }));

  family(out, "start_time_seconds", "gauge", "When the service started, in Unix seconds.", [
    { value: status.startedAt / 1000 },
  ]);
  family(
    out,
    "camera_online",
    "gauge",
    "1 while the camera delivers frames, else 0.",
    perCamera(
      (c) => (c.state === "online" ? 1 : 0),
    ),
  );
  family(
    out,
    "camera_state",
    "gauge",
    "The camera's connection state: 1 for the current state, 0 for the others.",
    cams.flatMap((c) =>
      STATES.map((s) => ({ labels: { camera: c.camera, state: s }, value: c.state === s ? 1 : 0 }))
    ),
  );
  family(
    out,
    "camera_last_frame_timestamp_seconds",
    "gauge",
    "When the camera's last frame was read, in Unix seconds.",
    cams.flatMap((c) =>
      c.lastFrameAt === undefined
        ? []
        : [{ labels: { camera: c.camera }, value: c.lastFrameAt / 1000 }]
    ),
  );
  family(
    out,
    "frames_total",
    "counter",
    "Frames read from the camera's decoder.",
    perCamera(
      (c) => c.framesIn,
    ),
  );
  family(
    out,
    "frames_dropped_total",
    "counter",
    "Frames dropped before inference, by stage (batch: the batcher's per-camera queue was full).",
    perCamera((c) => c.framesDropped, { stage: "batch" }),
  );
  family(
    out,
    "reconnects_total",
    "counter",
    "Decoder restarts after a failure or end of stream.",
    perCamera((c) => c.reconnects),
  );
  family(
    out,
    "stalls_total",
    "counter",
    "Decoder restarts because no frame arrived in time.",
    perCamera((c) => c.stalls),
  );

  const inf = status.inference;
  family(out, "inference_batches_total", "counter", "Batches scored by the engine.", [
    { value: inf.batches },
  ]);
  family(out, "inference_frames_total", "counter", "Frames scored by the engine.", [
    { value: inf.frames },
  ]);
  family(out, "batch_size", "summary", "Frames per batch scored.", [
    { suffix: "_sum", value: inf.frames },
    { suffix: "_count", value: inf.batches },
  ]);
  family(
    out,
    "inference_latency_seconds",
    "summary",
    "Engine time per batch, over a recent window.",
    latencySamples(inf.batchMs),
  );
  family(
    out,
    "capture_to_publish_seconds",
    "summary",
    "Time from a frame's capture to the publication of its score, over a recent window.",
    latencySamples(inf.captureToPublishMs),
  );

  const mqtt = status.mqtt;
  family(out, "mqtt_connected", "gauge", "1 while connected to the MQTT broker, else 0.", [
    { value: mqtt.connected ? 1 : 0 },
  ]);
  family(out, "mqtt_queued", "gauge", "Messages waiting in the outgoing MQTT queue.", [
    { value: mqtt.queued },
  ]);
  family(out, "mqtt_published_total", "counter", "Messages published to the broker.", [
    { value: mqtt.published },
  ]);
  family(
    out,
    "mqtt_dropped_total",
    "counter",
    "Messages dropped because the outgoing MQTT queue was full.",
    [{ value: mqtt.dropped }],
  );

  const m = status.model;
  family(out, "model_info", "gauge", "The model being served (always 1).", [
    {
      labels: {
        version: m.version,
        engine: m.engine,
        precision: m.precision ?? "fp32",
        source: m.source,
        untrained: String(m.untrained),
      },
      value: 1,
    },
  ]);
  return out.join("\n") + "\n";
}
