/**
 * A status snapshot for the HTTP tests.
 *
 * @module
 */
import type { CameraStatus } from "../core/frame.ts";
import type { PipelineStatus } from "../core/status.ts";

/** A two-camera status; `cameras` replaces the cameras when given. */
export function sampleStatus(cameras?: readonly CameraStatus[]): PipelineStatus {
  return {
    startedAt: 1_700_000_000_000,
    model: {
      version: "synthetic-s-seed0",
      source: "synthetic",
      engine: "onnx (cpu, 2 threads)",
      untrained: true,
    },
    cameras: cameras ?? [
      {
        camera: "line-1",
        state: "online",
        framesIn: 120,
        framesDropped: 3,
        reconnects: 1,
        stalls: 0,
        lastFrameAt: 1_700_000_060_500,
      },
      {
        camera: "line-2",
        state: "reconnecting",
        framesIn: 40,
        framesDropped: 0,
        reconnects: 4,
        stalls: 2,
        lastError: "Cannot read rtsp://***@cam-2/stream: connection refused",
      },
    ],
    inference: {
      batches: 50,
      frames: 157,
      meanBatchSize: 3.14,
      batchMs: { p50: 250, p95: 400, p99: 512, count: 50 },
      captureToPublishMs: { p50: 300, p95: 450, p99: 600, count: 157 },
    },
    mqtt: {
      url: "mqtt://127.0.0.1:1883",
      embedded: true,
      connected: true,
      queued: 2,
      published: 900,
      dropped: 5,
    },
  };
}
