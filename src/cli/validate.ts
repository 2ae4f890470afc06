/**
 * `validate <pipeline.yaml>`: checks a pipeline file without running it and prints the
 * resolved pipeline, secrets redacted.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { displayPipeline } from "../config/display.ts";
import { learningNotice, learningPlan } from "../config/learning.ts";
import { loadPipeline } from "../config/load.ts";

/** Usage line of {@linkcode validateCommand}. */
export const VALIDATE_USAGE = "validate <pipeline.yaml> [--json]";

/**
 * Loads and validates a pipeline file, prints the resolved pipeline on stdout (YAML with
 * every default filled in, or JSON with `--json`; passwords, credentials in URLs and
 * values from environment variables shown as `***`), and logs a summary.
 *
 * @throws {InputError} on bad arguments.
 * @throws {ConfigError} when the file cannot be read or is invalid; its message lists
 * every problem as `path (line N): message`.
 */
export async function validateCommand(args: string[], log: Logger): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: "boolean" } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) {
    throw new InputError(`Cannot validate: expected one pipeline file (${VALIDATE_USAGE})`);
  }
  const file = positionals[0]!;
  const pipeline = await loadPipeline(file);
  console.log(displayPipeline(pipeline, { format: values.json ? "json" : "yaml" }).trimEnd());
  const enabled = pipeline.cameras.filter((c) => c.enabled).length;
  const plan = learningPlan(pipeline);
  const notice = learningNotice(pipeline);
  if (notice !== undefined) log.info(notice);
  if (plan.untrained.length > 0) {
    log.warn(
      `no model.path: camera(s) ${plan.untrained.join(", ")} will be scored by a built-in ` +
        "UNTRAINED EfficientAD (synthetic weights); its scores mean nothing (set model.path, " +
        "or turn retraining on for them to learn their scene)",
    );
  }
  if (enabled === 0) log.warn("every camera is disabled: the service would score nothing");
  log.info("pipeline is valid", {
    file,
    cameras: pipeline.cameras.length,
    enabled,
    mqtt: pipeline.mqtt.embedded ? "embedded broker" : "external broker",
  });
}
