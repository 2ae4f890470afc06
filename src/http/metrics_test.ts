import type { PipelineStatus } from "../core/status.ts";
import { RollingPercentiles } from "../core/percentiles.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { escapeLabelValue, formatSampleValue, renderMetrics } from "./metrics.ts";
import { sampleStatus } from "./_test_utils.ts";

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (NaN|[+-]Inf|-?[0-9.e+-]+)$/;

/** Checks the 0.0.4 grammar: HELP then TYPE per family, families contiguous, samples valid. */
function parse(text: string): Map<string, { type: string; samples: string[] }> {
  assertOk(text.endsWith("\n"), "ends with a line feed");
  const families = new Map<string, { type: string; samples: string[] }>();
  let current: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    const type = line.match(/^# TYPE (\S+) (counter|gauge|summary|histogram|untyped)$/);
    if (type) {
      assertOk(!families.has(type[1]!), `family ${type[1]} appears once`);
      families.set(type[1]!, { type: type[2]!, samples: [] });
      current = type[1];
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = line.match(SAMPLE);
    assertOk(m, `valid sample line: ${line}`);
    const name = m[1]!;
    assertOk(
      current !== undefined &&
        (name === current || ["_sum", "_count"].some((s) => name === current + s)),
      `${name} belongs to the family above (${current})`,
    );
    families.get(current)!.samples.push(line);
  }
  return families;
}

Deno.test("renderMetrics() writes valid Prometheus text with every documented family", () => {
  const families = parse(renderMetrics(sampleStatus()));
  assertEquals([...families].map(([name, f]) => `${name} ${f.type}`), [
    "efficientad_start_time_seconds gauge",
    "efficientad_camera_online gauge",
    "efficientad_camera_state gauge",
    "efficientad_camera_last_frame_timestamp_seconds gauge",
    "efficientad_frames_total counter",
    "efficientad_frames_dropped_total counter",
    "efficientad_reconnects_total counter",
    "efficientad_stalls_total counter",
    "efficientad_inference_batches_total counter",
    "efficientad_inference_frames_total counter",
    "efficientad_batch_size summary",
    "efficientad_inference_latency_seconds summary",
    "efficientad_capture_to_publish_seconds summary",
    "efficientad_mqtt_connected gauge",
    "efficientad_mqtt_queued gauge",
    "efficientad_mqtt_published_total counter",
    "efficientad_mqtt_dropped_total counter",
    "efficientad_model_info gauge",
  ]);
});

Deno.test("renderMetrics() renders per-camera counters, states and model info", () => {
  const text = renderMetrics(sampleStatus());
  for (
    const line of [
      'efficientad_frames_total{camera="line-1"} 120',
      'efficientad_frames_dropped_total{camera="line-1",stage="batch"} 3',
      'efficientad_reconnects_total{camera="line-2"} 4',
      'efficientad_stalls_total{camera="line-2"} 2',
      'efficientad_camera_online{camera="line-1"} 1',
      'efficientad_camera_online{camera="line-2"} 0',
      'efficientad_camera_state{camera="line-2",state="reconnecting"} 1',
      'efficientad_camera_state{camera="line-2",state="online"} 0',
      'efficientad_camera_last_frame_timestamp_seconds{camera="line-1"} 1700000060.5',
      "efficientad_start_time_seconds 1700000000",
      "efficientad_batch_size_sum 157",
      "efficientad_batch_size_count 50",
      'efficientad_inference_latency_seconds{quantile="0.5"} 0.25',
      'efficientad_inference_latency_seconds{quantile="0.99"} 0.512',
      'efficientad_capture_to_publish_seconds{quantile="0.95"} 0.45',
      "efficientad_mqtt_connected 1",
      "efficientad_mqtt_queued 2",
      "efficientad_mqtt_published_total 900",
      "efficientad_mqtt_dropped_total 5",
      'efficientad_model_info{version="synthetic-s-seed0",engine="onnx (cpu, 2 threads)",precision="fp32",source="synthetic",untrained="true"} 1',
    ]
  ) assertOk(text.includes(line + "\n"), `missing: ${line}`);
  assertOk(!text.includes('camera_last_frame_timestamp_seconds{camera="line-2"}'));
  assertOk(!text.includes("efficientad_inference_latency_seconds_count"));
});

Deno.test("renderMetrics() labels model_info with the precision that serves", () => {
  const base = sampleStatus();
  const text = renderMetrics({ ...base, model: { ...base.model, precision: "int8" } });
  assertOk(text.includes('engine="onnx (cpu, 2 threads)",precision="int8",source='), text);
});

Deno.test("renderMetrics() adds _sum and _count when the percentiles carry totals", () => {
  const window = new RollingPercentiles(8);
  for (const ms of [100, 200, 300]) window.add(ms);
  const base = sampleStatus();
  const status: PipelineStatus = {
    ...base,
    inference: { ...base.inference, batchMs: window.snapshot() },
  };
  const families = parse(renderMetrics(status));
  assertEquals(families.get("efficientad_inference_latency_seconds")!.samples, [
    'efficientad_inference_latency_seconds{quantile="0.5"} 0.2',
    'efficientad_inference_latency_seconds{quantile="0.95"} 0.3',
    'efficientad_inference_latency_seconds{quantile="0.99"} 0.3',
    "efficientad_inference_latency_seconds_sum 0.6",
    "efficientad_inference_latency_seconds_count 3",
  ]);
});

Deno.test("renderMetrics() reports NaN quantiles for an empty window and no cameras", () => {
  const base = sampleStatus([]);
  const empty = { p50: 0, p95: 0, p99: 0, count: 0 };
  const families = parse(renderMetrics({
    ...base,
    inference: { ...base.inference, batchMs: empty, captureToPublishMs: empty },
  }));
  assertEquals(families.get("efficientad_frames_total")!.samples, []);
  assertEquals(families.get("efficientad_capture_to_publish_seconds")!.samples, [
    'efficientad_capture_to_publish_seconds{quantile="0.5"} NaN',
    'efficientad_capture_to_publish_seconds{quantile="0.95"} NaN',
    'efficientad_capture_to_publish_seconds{quantile="0.99"} NaN',
  ]);
});

Deno.test("renderMetrics() escapes label values", () => {
  assertEquals(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const base = sampleStatus();
  const text = renderMetrics({ ...base, model: { ...base.model, version: 'v"1\\\n' } });
  parse(text);
  assertOk(text.includes('version="v\\"1\\\\\\n"'));
});

Deno.test("formatSampleValue() writes NaN and infinities as Prometheus does", () => {
  assertEquals(
    [Number.NaN, Infinity, -Infinity, 0.25, 3].map(formatSampleValue),
    ["NaN", "+Inf", "-Inf", "0.25", "3"],
  );
});
