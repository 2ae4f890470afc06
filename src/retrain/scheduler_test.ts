import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import {
  type RetrainOutcome,
  RetrainScheduler,
  type RetrainSchedulerOptions,
} from "./scheduler.ts";
import { triggerSettings } from "./_test_utils.ts";

/**
 * A fake trainer for `deno eval` (as in train_process_test.ts): `FAKE_MODE` `ok` reports
 * progress (JSON lines on stdout, as `train --progress-json`) and writes `<out>/model.json`;
 * `fail` exits 2; `hang` reports one step and waits.
 */
const FAKE_TRAINER = `
const a = Deno.args;
const arg = (f) => { const i = a.indexOf(f); return i >= 0 ? a[i + 1] : undefined; };
const steps = Number(arg("--steps") ?? "3");
const mode = Deno.env.get("FAKE_MODE") ?? "ok";
const report = (e) => console.log(JSON.stringify(e));
if (mode === "fail") { console.error("error Cannot train: out of memory"); Deno.exit(2); }
if (mode === "hang") {
  report({ type: "progress", step: 1, total: steps, loss: 9.5, eta: "1m00s", etaMs: 60000 });
  setInterval(() => {}, 1000);
} else {
  for (let s = 1; s <= steps; s++) report({ type: "progress", step: s, total: steps, loss: 1 });
  Deno.mkdirSync(arg("--out"), { recursive: true });
  Deno.writeTextFileSync(arg("--out") + "/model.json", "{}");
}
`;

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 28, 10, 0);

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("Cannot wait: condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A scheduler on a fake clock with the fake trainer; `clock.t` moves time. */
async function setup(
  mode: "ok" | "fail" | "hang",
  over: Partial<RetrainSchedulerOptions> = {},
) {
  const dir = await Deno.makeTempDir();
  const clock = { t: T0 };
  const outcomes: RetrainOutcome[] = [];
  let n = 0;
  const scheduler = new RetrainScheduler({
    triggers: triggerSettings(),
    train: {
      command: [Deno.execPath(), "eval", FAKE_TRAINER],
      steps: 3,
      env: { FAKE_MODE: mode },
      killGraceMs: 500,
    },
    prepareData: () => Promise.resolve({ dataDir: dir, outDir: join(dir, `run-${++n}`) }),
    onResult: (o) => void outcomes.push(o),
    now: () => clock.t,
    ...over,
  });
  return {
    scheduler,
    clock,
    outcomes,
    dir,
    async [Symbol.asyncDispose]() {
      await scheduler.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("RetrainScheduler() fires the interval trigger once, with its reason", async () => {
  await using s = await setup("ok", { triggers: triggerSettings({ intervalMs: 6 * H }) });
  assertEquals(s.scheduler.evaluate(), undefined);
  assertEquals(s.scheduler.status().nextDueAt, T0 + 6 * H);
  s.clock.t += 6 * H;
  assertEquals(s.scheduler.evaluate()?.reason, "interval: 6h since the last training");
  assertEquals(s.scheduler.status().state, "preparing");
  await s.scheduler.idle();
  assertEquals(s.scheduler.evaluate(), undefined);
  assertEquals(s.outcomes.length, 1);
  const o = s.outcomes[0]!;
  assertEquals(o.trigger.kind, "interval");
  assertEquals([o.result?.ok, o.error], [true, undefined]);
  assertOk((await Deno.stat(join(s.dir, "run-1", "model.json"))).isFile);
  assertEquals(s.scheduler.status().state, "idle");
  assertEquals(s.scheduler.status().lastResult?.progress, { step: 3, total: 3, loss: 1 });
});

Deno.test("RetrainScheduler() evaluates on its timer", async () => {
  await using s = await setup("ok", {
    triggers: triggerSettings({ intervalMs: H }),
    checkEveryMs: 10,
  });
  s.clock.t += H;
  await until(() => s.outcomes.length === 1);
  assertEquals(s.outcomes[0]!.trigger.kind, "interval");
  assertEquals(s.scheduler.status().runs, 1);
});

Deno.test("RetrainScheduler() fires a daily time once", async () => {
  await using s = await setup("ok", { triggers: triggerSettings({ dailyAt: ["11:00"] }) });
  s.clock.t = T0 + H;
  assertEquals(s.scheduler.evaluate()?.reason, "daily: 11:00 UTC");
  await s.scheduler.idle();
  s.clock.t += H;
  assertEquals(s.scheduler.evaluate(), undefined);
  assertEquals(s.outcomes.length, 1);
});

Deno.test("RetrainScheduler.noteNormalFrame() fires the count trigger once", async () => {
  await using s = await setup("ok", {
    triggers: triggerSettings({ minNewFrames: 3, cooldownMs: H }),
  });
  s.scheduler.noteNormalFrame(0.1);
  s.scheduler.noteNormalFrame(0.1);
  assertEquals(s.scheduler.status().state, "idle");
  s.scheduler.noteNormalFrame(0.1);
  assertEquals(s.scheduler.status().trigger?.reason, "count: 3 new normal frames (at least 3)");
  await s.scheduler.idle();
  for (let i = 0; i < 5; i++) s.scheduler.noteNormalFrame(0.1); // within the cooldown
  await s.scheduler.idle();
  assertEquals(s.outcomes.length, 1);
  assertEquals(s.scheduler.status().newFrames, 5);
});

Deno.test("RetrainScheduler.noteNormalFrame() fires drift when the median passes the bound", async () => {
  await using s = await setup("ok", {
    triggers: triggerSettings({ drift: { window: 3, bound: 1, factor: null } }),
  });
  s.scheduler.noteNormalFrame(0.5);
  s.scheduler.noteNormalFrame(2);
  assertEquals(s.scheduler.status().state, "idle"); // the window is not full yet
  s.scheduler.noteNormalFrame(2); // median 2 of [0.5, 2, 2]
  assertEquals(s.scheduler.status().state, "preparing");
  await s.scheduler.idle();
  assertEquals(s.outcomes.length, 1);
  assertEquals(
    s.outcomes[0]!.trigger.reason,
    "drift: median score 2 of the last 3 normal frames > bound 1",
  );
});

Deno.test("RetrainScheduler.notePromotion() sets the drift factor's baseline", async () => {
  await using s = await setup("ok", {
    triggers: triggerSettings({ drift: { window: 2, bound: null, factor: 2 } }),
  });
  s.scheduler.notePromotion(0.5);
  s.scheduler.noteNormalFrame(0.9);
  s.scheduler.noteNormalFrame(1.0);
  assertEquals(s.scheduler.status().state, "idle");
  s.scheduler.noteNormalFrame(1.2);
  await s.scheduler.idle();
  assertEquals(s.outcomes.map((o) => o.trigger.kind), ["drift"]);
});

Deno.test("RetrainScheduler.command() retrain starts a manual run", async () => {
  await using s = await setup("ok");
  assertEquals(s.scheduler.command("retrain", "mqtt set/retrain"), "started");
  await s.scheduler.idle();
  assertEquals(s.outcomes[0]!.trigger, { kind: "manual", reason: "manual: mqtt set/retrain" });
  assertEquals(s.outcomes[0]!.result?.ok, true);
});

Deno.test("RetrainScheduler() runs one training at a time and coalesces triggers", async () => {
  await using s = await setup("ok");
  assertEquals(s.scheduler.command("retrain"), "started");
  assertEquals(s.scheduler.command("retrain", "second"), "pending");
  assertEquals(s.scheduler.command("retrain", "third"), "pending");
  assertEquals(s.scheduler.status().pending?.reason, "manual: second");
  assertEquals(s.scheduler.status().coalesced, 1);
  await s.scheduler.idle();
  assertEquals(s.outcomes.map((o) => o.trigger.reason), ["manual: command", "manual: second"]);
  assertEquals(s.outcomes.map((o) => o.result?.outDir), [
    join(s.dir, "run-1"),
    join(s.dir, "run-2"),
  ]);
  assertEquals(s.scheduler.status().runs, 2);
});

Deno.test("RetrainScheduler.command() cancel kills the training mid-run", async () => {
  const progress: number[] = [];
  await using s = await setup("hang", { onProgress: (p) => progress.push(p.step) });
  s.scheduler.command("retrain");
  await until(() => s.scheduler.status().progress !== undefined);
  const st = s.scheduler.status();
  assertEquals([st.state, st.progress?.step, st.progress?.total], ["training", 1, 3]);
  assertEquals(s.scheduler.command("retrain"), "pending");
  assertEquals(s.scheduler.command("cancel"), "cancelled");
  await s.scheduler.idle();
  assertEquals(s.outcomes.length, 1); // the pending run was dropped
  const r = s.outcomes[0]!.result;
  assertEquals([r?.ok, r?.cancelled, r?.signal], [false, true, "SIGTERM"]);
  assertEquals(s.scheduler.status().failures, 0);
  assertEquals(progress, [1]);
  assertEquals(s.scheduler.command("cancel"), "idle");
});

Deno.test("RetrainScheduler() reports a failing trainer and keeps running", async () => {
  await using s = await setup("fail", { triggers: triggerSettings({ intervalMs: H }) });
  s.scheduler.command("retrain");
  await s.scheduler.idle();
  const st = s.scheduler.status();
  assertEquals([st.state, st.failures], ["idle", 1]);
  assertEquals(
    st.lastError,
    "Cannot train: the trainer exited with code 2: error Cannot train: out of memory",
  );
  assertEquals(s.outcomes[0]!.result?.code, 2);
  s.clock.t += H;
  assertEquals(s.scheduler.evaluate()?.kind, "interval");
  await s.scheduler.idle();
  assertEquals(s.scheduler.status().failures, 2);
});

Deno.test("RetrainScheduler() reports a prepareData failure and a throwing onResult", async () => {
  let fail = true;
  const warnings: string[] = [];
  await using s = await setup("ok", {
    prepareData: () =>
      fail ? Promise.reject(new Error("the store is empty")) : Promise.resolve({
        dataDir: "/tmp",
        outDir: "/tmp/retrain-scheduler-unused",
      }),
    onResult: () => {
      throw new Error("validation crashed");
    },
    logger: { info: () => {}, warn: (m) => warnings.push(m) },
    train: { command: [Deno.execPath(), "eval", "Deno.exit(0)"], nice: false },
  });
  s.scheduler.command("retrain");
  await s.scheduler.idle();
  assertEquals(
    s.scheduler.status().lastError,
    "Cannot prepare training data: the store is empty",
  );
  fail = false;
  s.scheduler.command("retrain");
  await s.scheduler.idle();
  const st = s.scheduler.status();
  assertEquals([st.runs, st.failures, st.lastResult?.ok, st.lastError], [2, 1, true, undefined]);
  assertEquals(warnings, ["retrain failed", "retrain onResult failed", "retrain onResult failed"]);
});

Deno.test("RetrainScheduler() disposal cancels a running training", async () => {
  const ac = new AbortController();
  await using s = await setup("hang", { signal: ac.signal });
  s.scheduler.command("retrain");
  await until(() => s.scheduler.status().state === "training");
  ac.abort();
  await s.scheduler.close();
  assertEquals(s.outcomes[0]?.result?.cancelled, true);
  assertEquals(s.scheduler.command("retrain"), "closed");
});
