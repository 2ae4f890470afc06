import { join } from "node:path";
import { parse } from "yaml";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { ROOT } from "../../tests/parity.ts";
import { InputError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { ConfigError } from "../config/config_error.ts";
import { validateCommand } from "./validate.ts";

/** Runs `validate` and returns what it printed and logged. */
async function run(args: string[]): Promise<{ stdout: string; log: string[] }> {
  const lines: string[] = [];
  const printed: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => printed.push(parts.map(String).join(" "));
  try {
    await validateCommand(args, createLogger({ sink: (l) => lines.push(l) }));
  } finally {
    console.log = original;
  }
  return { stdout: printed.join("\n"), log: lines };
}

Deno.test("validateCommand() prints the demo resolved and says its camera learns first", async () => {
  const { stdout, log } = await run([join(ROOT, "pipelines", "demo.yaml")]);
  const data = parse(stdout);
  assertEquals(data.cameras[0].name, "demo");
  assertEquals(data.mqtt.embedded, { host: "127.0.0.1", port: 1883 });
  assertEquals(data.batching.queue_per_camera, 2);
  assertOk(
    log.some((l) => l.startsWith("info") && l.includes("camera(s) demo learn their scene first")),
    log.join("\n"),
  );
  assertOk(!log.some((l) => l.includes("UNTRAINED")), log.join("\n"));
  assertOk(log.some((l) => l.includes("pipeline is valid") && l.includes("cameras=1")));
});

Deno.test("validateCommand() --json prints the resolved form without secrets", async () => {
  const env = {
    CAM_USER: "viewer",
    CAM_PASS: "cam-secret",
    MQTT_USER: "u",
    MQTT_PASS: "mq-secret",
  };
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    const { stdout } = await run([join(ROOT, "pipelines", "rtsp-two-cameras.yaml"), "--json"]);
    const data = JSON.parse(stdout);
    assertEquals(data.mqtt.password, "***");
    assertEquals(data.cameras[0].url, "rtsp://***:***@10.20.0.11:554/Streaming/Channels/101");
    for (const secret of ["viewer", "cam-secret", "mq-secret"]) {
      assertOk(!stdout.includes(secret), secret);
    }
  } finally {
    for (const k of Object.keys(env)) Deno.env.delete(k);
  }
});

Deno.test("validateCommand() throws a ConfigError listing the problems", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "bad.yaml");
    await Deno.writeTextFile(file, "cameras:\n  - name: a\n    url: lavfi:x\n    fsp: 5\n");
    const e = await assertRejects(() => run([file]), ConfigError);
    assertEquals(
      e.message,
      `Cannot load pipeline ${file}: cameras[0].fsp (line 4): unknown key (did you mean "fps"?)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validateCommand() wants exactly one file", async () => {
  await assertRejects(() => run([]), InputError, "Cannot validate: expected one pipeline file");
  await assertRejects(() => run(["a.yaml", "b.yaml"]), InputError);
});
