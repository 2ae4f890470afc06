import { assertEquals } from "../../tests/assert.ts";
import * as config from "./mod.ts";

Deno.test("mod.ts exports the pipeline API", () => {
  assertEquals(
    [
      "ConfigError",
      "DEFAULTS",
      "displayPipeline",
      "expandEnv",
      "formatIssue",
      "loadPipeline",
      "parsePipeline",
      "resolveSource",
      "REDACTED",
      "redactedConfig",
      "resolvePipeline",
    ].filter((name) => !(name in config)),
    [],
  );
});
