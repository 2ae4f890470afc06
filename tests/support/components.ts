/**
 * The one rule for components the tests need (mosquitto, the GStreamer RTSP server,
 * ffmpeg, openssl): outside CI a missing component turns the tests that need it into
 * skips, shown by Deno as `ignored` (each such test passes `ignore: !HAS_X`), with one line
 * saying why; under `CI=true`, where `.ci/run` installs every component, a missing one is a
 * failure: the check throws, so every test file that needs it fails with its name.
 *
 * @example
 * ```ts
 * import { component } from "./components.ts";
 *
 * const HAS_TAR = component("tar", true);
 * Deno.test({ name: "tar() packs a folder", ignore: !HAS_TAR, fn() {} });
 * ```
 *
 * @module
 */

/** Whether this run is CI's (`CI=true`): a missing component then fails the run. */
export const IN_CI: boolean = (() => {
  try {
    return Deno.env.get("CI") === "true";
  } catch {
    return false; // no --allow-env
  }
})();

/** Options of {@linkcode component}. */
export interface ComponentOptions {
  /** Why it is missing, as the message says it. Default `"it is not installed"`. */
  readonly why?: string;
  /** Whether a missing component is an error. Default {@linkcode IN_CI}. */
  readonly ci?: boolean;
}

/**
 * Returns `present`. When the component is missing, prints
 * `skipped: the tests that need <name> (<why>)` and returns false outside CI; under CI
 * throws instead.
 *
 * @param name the component as a person installs it (`"mosquitto"`).
 * @param present whether it was found.
 * @throws {Error} `Cannot run the tests that need <name>: <why> (CI=true)` when it is
 * missing under CI.
 */
export function component(name: string, present: boolean, options: ComponentOptions = {}): boolean {
  if (present) return true;
  const why = options.why ?? "it is not installed";
  if (options.ci ?? IN_CI) {
    throw new Error(`Cannot run the tests that need ${name}: ${why} (CI=true)`);
  }
  console.warn(`skipped: the tests that need ${name} (${why})`);
  return false;
}
