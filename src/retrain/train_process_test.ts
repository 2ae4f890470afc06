import { join } from "node:path";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { trainArgv, TrainProcess } from "./train_process.ts";

/**
 * A fake trainer for `deno eval`: reads `--out` and `--steps`, and behaves as `FAKE_MODE`
 * says: `ok` logs and reports progress (JSON lines on stdout, as `train --progress-json`)
 * and writes `<out>/model.json`; `fail` logs an error and exits 2; `error-event` also
 * reports the error as an event and exits 1; `hang` reports one step and waits forever;
 * `stubborn` does the same but ignores SIGTERM.
 */
const FAKE_TRAINER = `
const a = Deno.args;
const arg = (f) => { const i = a.indexOf(f); return i >= 0 ? a[i + 1] : undefined; };
const out = arg("--out");
const steps = Number(arg("--steps") ?? "3");
const mode = Deno.env.get("FAKE_MODE") ?? "ok";
const log = (s) => console.error(s);
const report = (e) => console.log(JSON.stringify(e));
if (mode === "stubborn") Deno.addSignalListener("SIGTERM", () => log("ignoring SIGTERM"));
if (mode === "fail") { log("error Cannot read training data: no images in " + arg("--data")); Deno.exit(2); }
if (mode === "error-event") {
  report({ type: "error", message: "Cannot read training data: no images in " + arg("--data") });
  log("error Cannot read training data: no images in " + arg("--data"));
  Deno.exit(1);
}
if (mode === "hang" || mode === "stubborn") {
  log("info  step 1/" + steps + " loss 9.5000 st 1 ae 1 stae 1 lr 1e-4 1.000 steps/s ETA 1m00s");
  report({ type: "progress", step: 1, total: steps, loss: 9.5, eta: "1m00s", etaMs: 60000 });
  setInterval(() => {}, 1000);
} else {
  console.log("loading data");
  for (let s = 1; s <= steps; s++) {
    log("info  step " + s + "/" + steps + " loss " + (10 / s).toFixed(4) + " st 1 ae 1 stae 1 lr 1e-4 2.000 steps/s ETA " + (steps - s) + "s");
    report({ type: "progress", step: s, total: steps, loss: 10 / s, eta: (steps - s) + "s", etaMs: (steps - s) * 1000 });
  }
  // A log line that looks like an event is not one: events come on stdout.
  log(JSON.stringify({ type: "progress", step: 99, total: 99 }));
  Deno.mkdirSync(out, { recursive: true });
  Deno.writeTextFileSync(out + "/model.json", JSON.stringify({ data: arg("--data"), steps }));
  report({ type: "done", step: steps, total: steps, interrupted: false, checkpointDir: out + "/checkpoint", out });
  console.log("model written to " + out);
}
`;

/** The fake trainer's argv prefix. */
function fakeCommand(): string[] {
  return [Deno.execPath(), "eval", FAKE_TRAINER];
}

/** Resolves when `cond()` holds, polling; rejects after `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("Cannot wait: condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("trainArgv() builds argv as data, under nice when asked", () => {
  const base = { dataDir: "d i r", outDir: "o", command: ["trainer", "train"] };
  assertEquals(trainArgv({ ...base, nice: false, steps: 5, extraArgs: ["--seed", "0"] }), [
    "trainer",
    "train",
    "--data",
    "d i r",
    "--out",
    "o",
    "--steps",
    "5",
    "--seed",
    "0",
  ]);
  assertEquals(trainArgv({ ...base, nice: 15, nicePath: "/bin/nice" }).slice(0, 4), [
    "/bin/nice",
    "-n",
    "15",
    "trainer",
  ]);
  assertEquals(trainArgv({ ...base, nicePath: "/does/not/exist" })[0], "trainer");
  assertEquals(trainArgv({ dataDir: "d", outDir: "o" }).slice(-8, -3), [
    "main.ts",
    "train",
    "--exit-with-parent",
    "--progress-json",
    "--data",
  ]);
  assertThrows(() => trainArgv({ ...base, steps: 0 }), RangeError, "steps");
  assertThrows(() => trainArgv({ ...base, command: [] }), RangeError, "empty");
});

Deno.test("TrainProcess() runs the trainer, reports progress and its output dir", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const seen: number[] = [];
    await using run = new TrainProcess({
      command: fakeCommand(),
      dataDir: "/data/cam1",
      outDir: join(dir, "out"),
      steps: 4,
      onProgress: (p) => seen.push(p.step),
    });
    const r = await run.result;
    assertEquals([r.ok, r.code, r.cancelled, r.outDir], [true, 0, false, join(dir, "out")]);
    assertEquals(seen, [1, 2, 3, 4]);
    assertEquals(r.progress, { step: 4, total: 4, loss: 2.5, eta: "0s", etaMs: 0 });
    assertEquals(r.done, {
      step: 4,
      total: 4,
      interrupted: false,
      checkpointDir: join(dir, "out", "checkpoint"),
      out: join(dir, "out"),
    });
    assertEquals(r.error, undefined);
    assertOk(r.lastLines.includes("loading data"));
    // Event lines are read, not kept; log lines are kept as written, even JSON-like ones.
    assertOk(!r.lastLines.some((l) => l.startsWith('{"type":"progress","step":1')));
    assertOk(r.lastLines.includes('{"type":"progress","step":99,"total":99}'));
    assertOk(r.lastLines.some((l) => l.startsWith("info  step 4/4 loss 2.5000")));
    assertOk(r.durationMs > 0);
    const model = JSON.parse(await Deno.readTextFile(join(dir, "out", "model.json")));
    assertEquals(model, { data: "/data/cam1", steps: 4 });
    if (trainArgv({ dataDir: "d", outDir: "o" })[0] === "/usr/bin/nice") {
      assertEquals(run.argv.slice(0, 3), ["/usr/bin/nice", "-n", "10"]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TrainProcess() reports a failing trainer with its exit code and last line", async () => {
  await using run = new TrainProcess({
    command: fakeCommand(),
    dataDir: "/nowhere",
    outDir: "/tmp/unused",
    env: { FAKE_MODE: "fail" },
  });
  const r = await run.result;
  assertEquals([r.ok, r.code, r.cancelled], [false, 2, false]);
  assertEquals(
    r.error,
    "Cannot train: the trainer exited with code 2: error Cannot read training data: no images in /nowhere",
  );
});

Deno.test("TrainProcess() reports a failing trainer with its error event", async () => {
  await using run = new TrainProcess({
    command: fakeCommand(),
    dataDir: "/nowhere",
    outDir: "/tmp/unused",
    env: { FAKE_MODE: "error-event" },
  });
  const r = await run.result;
  assertEquals([r.ok, r.code, r.cancelled], [false, 1, false]);
  assertEquals(
    r.error,
    "Cannot train: the trainer exited with code 1: Cannot read training data: no images in /nowhere",
  );
});

Deno.test("TrainProcess() reports a trainer that cannot start", async () => {
  await using run = new TrainProcess({
    command: ["/does/not/exist/trainer"],
    dataDir: "d",
    outDir: "o",
    nice: false,
  });
  const r = await run.result;
  assertEquals([r.ok, r.code], [false, null]);
  assertOk(r.error?.startsWith("Cannot train: cannot start /does/not/exist/trainer"));
});

Deno.test("TrainProcess.cancel() stops a running trainer with SIGTERM", async () => {
  await using run = new TrainProcess({
    command: fakeCommand(),
    dataDir: "d",
    outDir: "o",
    env: { FAKE_MODE: "hang" },
  });
  await until(() => run.progress() !== undefined);
  const r = await run.cancel();
  assertEquals([r.ok, r.cancelled, r.signal, r.code], [false, true, "SIGTERM", null]);
  assertEquals(r.error, "Cannot train: cancelled");
  assertEquals(r.progress?.step, 1);
});

Deno.test("TrainProcess.cancel() kills a trainer that ignores SIGTERM after the grace", async () => {
  const ac = new AbortController();
  await using run = new TrainProcess({
    command: fakeCommand(),
    dataDir: "d",
    outDir: "o",
    env: { FAKE_MODE: "stubborn" },
    killGraceMs: 200,
    signal: ac.signal,
  });
  await until(() => run.progress() !== undefined);
  ac.abort();
  const r = await run.result;
  assertEquals([r.cancelled, r.signal], [true, "SIGKILL"]);
  assertOk(r.lastLines.includes("ignoring SIGTERM"));
});
