/**
 * `run <pipeline.yaml>`: the service's main job. Validates the file first (nothing starts
 * on a bad file), then runs the pipeline until SIGINT / SIGTERM or the signal aborts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { loadPipeline } from "../config/mod.ts";
import { Pipeline } from "../pipeline/pipeline.ts";

/** Options of {@linkcode runCommand}. */
export interface RunOptions {
  /** Stops the pipeline when aborted (tests); SIGINT / SIGTERM always do. */
  readonly signal?: AbortSignal;
  /** Called once the pipeline runs (tests). */
  readonly onStarted?: (pipeline: Pipeline) => void;
}

/**
 * Runs a pipeline file until stopped.
 *
 * @throws {ConfigError} on a bad pipeline file (before anything starts).
 */
export async function runCommand(
  args: string[],
  log: Logger,
  options: RunOptions = {},
): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true });
  if (positionals.length !== 1) {
    throw new InputError(
      "Cannot run: expected exactly one pipeline file, e.g. run pipelines/demo.yaml",
    );
  }
  const config = await loadPipeline(positionals[0]!);
  const serviceLog = log.withLevel(config.logging.level);
  const stop = new AbortController();
  const onSignal = () => {
    serviceLog.info("stopping: producers first, then inference, MQTT and HTTP");
    stop.abort();
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });
  try {
    await using pipeline = await Pipeline.start(config, { logger: serviceLog });
    options.onStarted?.(pipeline);
    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    options.signal?.removeEventListener("abort", onSignal);
  }
  serviceLog.info("stopped");
}
