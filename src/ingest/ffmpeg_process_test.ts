import { assertEquals, assertOk } from "../../tests/assert.ts";
import { drainStderr, stopProcess } from "./ffmpeg_process.ts";
import { LineRing } from "./line_ring.ts";

function spawn(script: string): Deno.ChildProcess {
  return new Deno.Command("bash", {
    args: ["-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

Deno.test("stopProcess() sends SIGTERM at once to a process that has not ended", async () => {
  const child = spawn("sleep 30");
  const ring = new LineRing(4);
  const stderr = drainStderr(child.stderr, ring);
  const t0 = Date.now();
  const status = await stopProcess(child, { ended: false, graceMs: 5000 });
  await stderr;
  assertEquals(status.signal, "SIGTERM");
  assertOk(Date.now() - t0 < 4000);
});

Deno.test("stopProcess() SIGKILLs a process that ignores SIGTERM after the grace period", async () => {
  const child = spawn("trap '' TERM; echo ready >&2; while true; do sleep 0.05; done");
  const ring = new LineRing(4);
  const stderr = drainStderr(child.stderr, ring);
  while (ring.lines().length === 0) await new Promise((r) => setTimeout(r, 20));
  const status = await stopProcess(child, { ended: false, graceMs: 200 });
  await stderr;
  assertEquals(status.signal, "SIGKILL");
});

Deno.test("stopProcess() lets an ended process exit by itself", async () => {
  const child = spawn("echo one >&2; printf 'two' >&2");
  const ring = new LineRing(4);
  const stderr = drainStderr(child.stderr, ring);
  const status = await stopProcess(child, { ended: true, graceMs: 5000 });
  await stderr;
  assertEquals([status.success, status.signal], [true, null]);
  assertEquals(ring.lines(), ["one", "two"]);
});
