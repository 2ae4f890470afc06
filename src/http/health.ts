/**
 * The health rule behind `/healthz`.
 *
 * Healthy (200 `ok`) while the pipeline runs, unless it has cameras and *every* one of them
 * is `offline`: then nothing can be inspected and the service says so (503, with the
 * reason). `starting` and `reconnecting` cameras count as healthy, since the service is
 * doing its job (supervision retries them), and so does a pipeline with no cameras. The
 * rule is about the service, not the model: an untrained model or a dead MQTT broker is
 * visible in `/status` and `/metrics` but does not make the service unhealthy (inference
 * goes on while the broker is away).
 *
 * @module
 */
import type { PipelineStatus } from "../core/status.ts";

/** The outcome of {@linkcode checkHealth}. */
export type Health = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Applies the health rule to a status snapshot; see the module documentation. */
export function checkHealth(status: PipelineStatus): Health {
  const cameras = status.cameras;
  if (cameras.length > 0 && cameras.every((c) => c.state === "offline")) {
    const names = cameras.map((c) => c.camera).join(", ");
    return {
      ok: false,
      reason: cameras.length === 1
        ? `camera ${names} is offline`
        : `all ${cameras.length} cameras are offline (${names})`,
    };
  }
  return { ok: true };
}
