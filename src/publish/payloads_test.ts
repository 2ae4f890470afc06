import type { CameraStatus } from "../core/frame.ts";
import type { PipelineStatus } from "../core/status.ts";
import { assertEquals } from "../../tests/assert.ts";
import {
  eventMessage,
  modelMessage,
  scoreMessage,
  statsMessage,
  statusMessage,
} from "./payloads.ts";
import { syntheticScoredFrame } from "./_test_utils.ts";

Deno.test("scoreMessage() carries raw and normalised scores, the raw threshold and latency", () => {
  const scored = syntheticScoredFrame({
    camera: "line-1",
    seq: 7,
    capturedAt: Date.UTC(2025, 0, 2, 3, 4, 5, 600),
    score: 1.25,
    normalizedScore: 0.61,
    threshold: 1.1,
    batchSize: 4,
    inferenceMs: 12.3456,
  });
  assertEquals(scoreMessage(scored, Date.UTC(2025, 0, 2, 3, 4, 5, 600) + 42.5), {
    v: 1,
    camera: "line-1",
    seq: 7,
    captured_at: "2025-01-02T03:04:05.600Z",
    captured_at_ms: Date.UTC(2025, 0, 2, 3, 4, 5, 600),
    score: 1.25,
    threshold: 1.1,
    normalized_score: 0.61,
    anomalous: true,
    model_version: "test-model@1",
    model_precision: "fp32",
    latency_ms: 42.5,
    batch_size: 4,
    inference_ms: 12.346,
  });
});

Deno.test("scoreMessage() gives null threshold and normalised score when unknown", () => {
  const m = scoreMessage(syntheticScoredFrame({ anomalous: false }), Date.now());
  assertEquals([m.threshold, m.normalized_score], [null, null]);
});

Deno.test("statusMessage() redacts credentials in the last error", () => {
  const status: CameraStatus = {
    camera: "cam",
    state: "reconnecting",
    framesIn: 10,
    framesDropped: 1,
    reconnects: 2,
    stalls: 0,
    lastError: "Cannot open rtsp://admin:hunter2@10.0.0.5/s1: refused",
  };
  const m = statusMessage(status, 0);
  assertEquals(m.last_error, "Cannot open rtsp://***:***@10.0.0.5/s1: refused");
  assertEquals([m.state, m.last_frame_at, m.time], [
    "reconnecting",
    null,
    "1970-01-01T00:00:00.000Z",
  ]);
});

Deno.test("scoreMessage() says which precision scored the frame", () => {
  const int8 = syntheticScoredFrame({ modelPrecision: "int8" });
  assertEquals(scoreMessage(int8, Date.now()).model_precision, "int8");
  assertEquals(scoreMessage(syntheticScoredFrame(), Date.now()).model_precision, "fp32");
});

Deno.test("eventMessage() sets end fields only on end", () => {
  const base = {
    id: "id-1",
    camera: "cam",
    startSeq: 3,
    lastSeq: 9,
    startedAt: 1000,
    lastAt: 1600,
    durationMs: 600,
    peakScore: 2,
    peakNormalizedScore: 0.8,
    peakSeq: 5,
    frames: 7,
  };
  const context = { onThreshold: 0.5, offThreshold: 0.45, threshold: 1.5, modelVersion: "m" };
  const start = eventMessage({ ...base, type: "start" }, context);
  assertEquals([start.end_seq, start.ended_at, start.reason], [null, null, null]);
  assertEquals(start.model_precision, "fp32");
  const int8 = eventMessage({ ...base, type: "start" }, { ...context, modelPrecision: "int8" });
  assertEquals(int8.model_precision, "int8");
  const end = eventMessage({ ...base, type: "end", reason: "cleared" }, context);
  assertEquals([end.end_seq, end.ended_at_ms, end.reason, end.duration_ms], [
    9,
    1600,
    "cleared",
    600,
  ]);
});

function pipelineStatus(framesIn: number): PipelineStatus {
  const p = { p50: 1, p95: 2, p99: 3, count: 10 };
  return {
    startedAt: 0,
    model: { version: "m", source: "x", engine: "onnx (cpu)", untrained: false },
    cameras: [{
      camera: "cam",
      state: "online",
      framesIn,
      framesDropped: 0,
      reconnects: 0,
      stalls: 0,
    }],
    inference: { batches: 1, frames: 1, meanBatchSize: 1, batchMs: p, captureToPublishMs: p },
    mqtt: { url: "u", embedded: false, connected: true, queued: 0, published: 0, dropped: 0 },
  };
}

Deno.test("statsMessage() computes per-camera rates against the previous sample", () => {
  const first = { at: 10_000, status: pipelineStatus(100), scored: new Map([["cam", 90]]) };
  const second = { at: 12_000, status: pipelineStatus(160), scored: new Map([["cam", 140]]) };
  assertEquals(statsMessage(first).cameras[0]!.fps_in, null);
  const m = statsMessage(second, first);
  assertEquals([m.cameras[0]!.fps_in, m.cameras[0]!.fps_scored, m.uptime_s], [30, 25, 12]);
  assertEquals(m.inference.batch_ms, { p50: 1, p95: 2, p99: 3, count: 10 });
});

Deno.test("statsMessage() says which precision serves, fp32 when the status does not say", () => {
  const status = pipelineStatus(100);
  const sample = (s: PipelineStatus) => ({ at: 10_000, status: s, scored: new Map() });
  assertEquals(statsMessage(sample(status)).model.precision, "fp32");
  const int8 = { ...status, model: { ...status.model, precision: "int8" as const } };
  assertEquals(statsMessage(sample(int8)).model, {
    version: "m",
    engine: "onnx (cpu)",
    precision: "int8",
    untrained: false,
  });
});

Deno.test("modelMessage() carries the validation of candidate and current and the decision", () => {
  const at = Date.UTC(2025, 5, 1, 12, 0, 0);
  const frames = { normalFrames: 200, anomalousFrames: 12 };
  const message = modelMessage("line-1", {
    state: "refused",
    key: "line-1",
    serving: "efficientad-s@3",
    candidate: "efficientad-s@4",
    trigger: "drift",
    triggerReason: "median normalised score 0.41 > 0.35",
    validation: {
      candidate: {
        ...frames,
        flaggedFraction: 0.081,
        medianNormalized: 0.3312345,
        detectedFraction: 0.75,
        auroc: 0.91,
      },
      current: {
        ...frames,
        flaggedFraction: 0.02,
        medianNormalized: 0.28,
        detectedFraction: 1,
        auroc: 0.98765,
      },
    },
    decisionReason: "flagged share 0.081 > current 0.02 + margin 0.05",
    at,
  }, at + 5000);
  assertEquals(message, {
    v: 1,
    time: "2025-06-01T12:00:00.000Z",
    time_ms: at,
    camera: "line-1",
    state: "refused",
    model_version: "efficientad-s@3",
    candidate_version: "efficientad-s@4",
    trigger: "drift",
    trigger_reason: "median normalised score 0.41 > 0.35",
    collecting: null,
    training: null,
    validation: {
      normal_frames: 200,
      anomalous_frames: 12,
      candidate: {
        flagged_share: 0.081,
        median_normalized_score: 0.3312,
        detected_share: 0.75,
        auroc: 0.91,
      },
      current: {
        flagged_share: 0.02,
        median_normalized_score: 0.28,
        detected_share: 1,
        auroc: 0.9877,
      },
    },
    decision_reason: "flagged share 0.081 > current 0.02 + margin 0.05",
    store_error: null,
  });
  const collecting = modelMessage("line-1", {
    state: "collecting",
    key: "line-1",
    at,
    serving: "efficientad-s@3",
    trigger: "drift",
    collected: 10,
    needed: 100,
  }, at);
  assertEquals(collecting.collecting, { frames: 10, needed: 100, bootstrap: false });
});

Deno.test("modelMessage() sends validation null for a candidate refused before scoring", () => {
  const at = Date.UTC(2025, 5, 1, 12, 0, 0);
  const reason = "candidate has no usable int8 graph (its model directory has none: the " +
    "trainer did not calibrate one)";
  const m = modelMessage("line-1", {
    state: "refused",
    key: "line-1",
    at,
    serving: "m@1",
    trigger: "count",
    candidate: "m@2",
    decisionReason: reason,
  }, at);
  assertEquals([m.state, m.candidate_version, m.validation, m.decision_reason], [
    "refused",
    "m@2",
    null,
    reason,
  ]);
});

Deno.test("modelMessage() gives the decision of a rollback, a failure and a cancellation", () => {
  const at = Date.UTC(2025, 5, 1, 12, 0, 0);
  const base = { key: "line", at, serving: "m@1" };
  const pick = (
    m: ReturnType<typeof modelMessage>,
  ) => [
    m.state,
    m.model_version,
    m.candidate_version,
    m.trigger,
    m.trigger_reason,
    m.decision_reason,
  ];
  const rolledBack = modelMessage("line-1", {
    ...base,
    state: "rolled_back",
    from: "m@2",
    trigger: "command",
    triggerReason: "MQTT command",
    decisionReason: "MQTT command",
  });
  assertEquals(pick(rolledBack), [
    "rolled_back",
    "m@1",
    null,
    "command",
    "MQTT command",
    "MQTT command",
  ]);
  const failed = modelMessage("line-1", {
    ...base,
    state: "failed",
    trigger: "count",
    triggerReason: "count: 500 new normal frames (at least 500)",
    decisionReason: "Cannot train: exited with code 2",
  });
  assertEquals(pick(failed), [
    "failed",
    "m@1",
    null,
    "count",
    "count: 500 new normal frames (at least 500)",
    "Cannot train: exited with code 2",
  ]);
  const validating = modelMessage("line-1", {
    ...base,
    state: "validating",
    candidate: "m@3",
    trigger: "count",
  });
  assertEquals(pick(validating), ["validating", "m@1", "m@3", "count", null, null]);
  const cancelled = modelMessage("line-1", { ...base, state: "idle", cancelled: true });
  assertEquals(pick(cancelled), ["idle", "m@1", null, null, null, "training cancelled"]);
  const idle = modelMessage("line-1", { key: "line", at, state: "idle", cancelled: false });
  assertEquals(pick(idle), ["idle", null, null, null, null, null]);
  assertEquals([idle.time_ms, idle.collecting, idle.training, idle.validation], [
    at,
    null,
    null,
    null,
  ]);
});
