/**
 * Whether openssl runs here (the TLS tests make their certificates with it): tests that
 * need it pass `ignore: !HAS_OPENSSL`; under `CI=true` a missing openssl fails the run (see
 * `components.ts`).
 *
 * @module
 */
import { component } from "./components.ts";

function opensslRuns(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * True when `openssl version` runs (checked once, when this module loads).
 *
 * @throws {Error} under `CI=true` when it does not.
 */
export const HAS_OPENSSL: boolean = component("openssl", opensslRuns(), {
  why: "`openssl version` does not run",
});
