/**
 * Fault injection for process-level tests: `EFFICIENTAD_FAILPOINT=registry:<step>` makes
 * the service kill itself (SIGKILL, no clean-up, as a power cut would) when a model registry
 * change reaches `<step>` (a {@linkcode RegistryStep}, e.g. `registry:pointer:temp-written`
 * in the middle of a promotion). Unset, it does nothing. Not for production use.
 *
 * @module
 */
import { REGISTRY_STEPS, type RegistryStep } from "./registry.ts";

const STEPS: readonly RegistryStep[] = REGISTRY_STEPS;

/** The environment variable read by {@linkcode registryFailpoint}. */
export const FAILPOINT_ENV = "EFFICIENTAD_FAILPOINT";

function readEnv(): string | undefined {
  try {
    return Deno.env.get(FAILPOINT_ENV);
  } catch {
    return undefined; // no --allow-env: no failpoint
  }
}

/**
 * The registry's `onStep` hook for the failpoint in `value` (default: the environment), or
 * undefined when none is set.
 *
 * @throws {RangeError} when the value names no registry step (a typo must not pass silently).
 */
export function registryFailpoint(
  value: string | undefined = readEnv(),
  kill: () => void = () => Deno.kill(Deno.pid, "SIGKILL"),
): ((step: RegistryStep) => void) | undefined {
  if (value === undefined || value === "") return undefined;
  const step = value.startsWith("registry:") ? value.slice("registry:".length) : undefined;
  if (step === undefined || !STEPS.includes(step as RegistryStep)) {
    throw new RangeError(
      `Cannot use ${FAILPOINT_ENV}=${value}: expected registry:<step>, one of ${STEPS.join(", ")}`,
    );
  }
  return (at) => {
    if (at === step) kill();
  };
}
