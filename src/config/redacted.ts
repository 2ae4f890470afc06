/**
 * A pipeline made safe to print: no password, no credentials in URLs, no value that came
 * from an environment variable.
 *
 * @module
 */
import { redact } from "../core/redact.ts";
import type { ResolvedPipeline } from "./resolve.ts";

/** What secrets are replaced with. */
export const REDACTED = "***";

/**
 * A value that is a secret is hidden whole, whatever its length; secrets inside longer
 * text (3 characters or more, as `redact()` does) are replaced longest first, so a
 * password holding `@` is not split by the URL rule that runs last.
 */
function hide(text: string, secrets: readonly string[]): string {
  if (secrets.includes(text)) return REDACTED;
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= 3) out = out.split(s).join(REDACTED);
  }
  return redact(out);
}

function scrub(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === "string") return hide(value, secrets);
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, secrets)]));
  }
  return value;
}

/**
 * A copy of a resolved pipeline for display (`validate`, logs, `/status`): the MQTT
 * password becomes `***`, URL credentials become `***:***`, and every string holding a
 * secret (see {@linkcode ResolvedPipeline.secrets}) has it replaced by `***`. The copy's
 * own `secrets` is empty. Never run the copy: it has lost its credentials.
 */
export function redactedConfig(pipeline: ResolvedPipeline): ResolvedPipeline {
  const copy = scrub(pipeline, pipeline.secrets) as Omit<ResolvedPipeline, "secrets">;
  const out = {
    ...copy,
    mqtt: {
      ...copy.mqtt,
      password: pipeline.mqtt.password === null ? null : REDACTED,
    },
  };
  Object.defineProperty(out, "secrets", { value: [], enumerable: false });
  return out as ResolvedPipeline;
}
