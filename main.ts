/**
 * The EfficientAD edge service's entry point: composes the commands of `src/cli`.
 *
 * `deno task cli <command> [args...]`; with no command it runs the demo.
 *
 * @module
 */
import { runCli } from "./src/cli/commands.ts";

if (import.meta.main) {
  const args = Deno.args.length === 0 ? ["demo"] : Deno.args;
  Deno.exit(await runCli(args));
}
