import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { readProjectModel } from "../model/project_format.ts";
import { readCheckpoint, TRAIN_SOURCE } from "../train/checkpoint.ts";
import { stubFactory, type StubStep, writePngs } from "../train/_test_utils.ts";
import type { TrainStepFactory } from "../train/loop.ts";
import { UNTRAINED_TEACHER_WARNING } from "../train/train_model.ts";
import { parseTrainEvent } from "../train/progress_event.ts";
import { TrainProcess } from "../retrain/train_process.ts";
import { parseTrainArgs, trainCommand } from "./train.ts";
import { HAS_SHARED_TEACHER, SHARED_TEACHER } from "../../tests/parity.ts";

const FIXTURE_TEACHER = SHARED_TEACHER;
const HAS_TEACHER = HAS_SHARED_TEACHER;

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ sink: (l) => lines.push(l) }), lines };
}

async function withWorkspace(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "data"), 4, { width: 256, height: 256 });
    await writePngs(join(dir, "penalty"), 2, { width: 300, height: 260 });
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A stub factory whose steps abort `controller` after 0-based step `at`. */
function abortingFactory(
  made: StubStep[],
  controller: AbortController,
  at: number,
): TrainStepFactory {
  const inner = stubFactory(made);
  return async (init) => {
    const s = (await inner(init)) as StubStep;
    s.afterStep = (i) => {
      if (i === at) controller.abort();
    };
    return s;
  };
}

Deno.test("parseTrainArgs() validates every flag with a clear message", () => {
  assertThrows(
    () => parseTrainArgs(["--out", "m"]),
    InputError,
    "--data <folder of normal images> is required",
  );
  assertThrows(() => parseTrainArgs(["--data", "d"]), InputError, "--out <model dir> is required");
  const base = ["--data", "d", "--out", "o"];
  assertThrows(
    () => parseTrainArgs([...base, "--size", "l"]),
    InputError,
    "--size l: expected s or m",
  );
  assertThrows(() => parseTrainArgs([...base, "--steps", "0"]), InputError, "--steps 0");
  assertThrows(() => parseTrainArgs([...base, "--steps", "1.5"]), InputError, "--steps 1.5");
  assertThrows(
    () => parseTrainArgs([...base, "--image-size", "128x128"]),
    InputError,
    "at least 256",
  );
  assertThrows(() => parseTrainArgs([...base, "--image-size", "big"]), InputError, "expected HxW");
  assertThrows(
    () => parseTrainArgs([...base, "--calibration", "all"]),
    InputError,
    "split or test-good",
  );
  assertThrows(() => parseTrainArgs([...base, "--holdout", "1"]), InputError, "--holdout 1");
  assertThrows(() => parseTrainArgs([...base, "--seed=-1"]), InputError, "--seed -1");
  assertThrows(
    () => parseTrainArgs([...base, "--bogus"]),
    InputError,
    "Cannot parse train options",
  );
  assertEquals(
    parseTrainArgs([
      ...base,
      "--size",
      "M",
      "--steps",
      "250",
      "--image-size",
      "320x256",
      "--seed",
      "0",
    ]),
    {
      data: "d",
      out: "o",
      size: "m",
      steps: 250,
      imageSize: [320, 256],
      seed: 0,
      checkpointEvery: 500,
      engine: "onnx",
    },
  );
  assertEquals(parseTrainArgs([...base, "--engine", "tfjs"]).engine, "tfjs");
  assertEquals(parseTrainArgs(["--resume", "ck"]).resume, "ck");
  assertEquals(
    parseTrainArgs([...base, "--providers", "webgpu,cpu"]).executionProviders,
    ["webgpu", "cpu"],
  );
  assertThrows(
    () => parseTrainArgs([...base, "--engine", "tfjs", "--providers", "webgpu"]),
    InputError,
    "Cannot use --providers with --engine tfjs",
  );
  assertThrows(() => parseTrainArgs([...base, "--providers", "gpu"]), InputError, "provider gpu");
});

/** A factory that refuses, to stop a command right after its input checks. */
const refuse: TrainStepFactory = () => Promise.reject(new Error("stopped before training"));

Deno.test("trainCommand() warns plainly when it trains with an untrained teacher", async () => {
  await withWorkspace(async (dir) => {
    const { log, lines } = capture();
    await assertRejects(
      () =>
        trainCommand(
          ["--data", join(dir, "data"), "--out", join(dir, "model"), "--steps", "2"],
          log,
          {
            step: refuse,
          },
        ),
      Error,
      "stopped before training",
    );
    assertOk(lines.some((l) => l.includes(UNTRAINED_TEACHER_WARNING)), lines.join("\n"));
    assertOk(UNTRAINED_TEACHER_WARNING.includes("teacher fetch"));
    assertOk(UNTRAINED_TEACHER_WARNING.includes("far better"));
    assertOk(lines.some((l) => l.includes("no --penalty-images")));
  });
});

Deno.test("trainCommand() rejects unusable data before training", async () => {
  await withWorkspace(async (dir) => {
    await assertRejects(
      () =>
        trainCommand(["--data", join(dir, "nope"), "--out", join(dir, "m")], capture().log, {
          step: refuse,
        }),
      InputError,
      "not a folder",
    );
    await assertRejects(
      () =>
        trainCommand(
          [
            "--data",
            join(dir, "data"),
            "--out",
            join(dir, "m"),
            "--penalty-images",
            join(dir, "model"),
          ],
          capture().log,
          { step: refuse },
        ),
      InputError,
      "Cannot list images",
    );
    await assertRejects(
      () => trainCommand(["--resume", join(dir, "data")], capture().log, { step: refuse }),
      InputError,
      "not a training checkpoint",
    );
  });
});

Deno.test("trainCommand() trains with a stub step, checkpoints and writes a project model with ONNX", async () => {
  await withWorkspace(async (dir) => {
    const { log, lines } = capture();
    const made: StubStep[] = [];
    const out = join(dir, "model");
    const result = await trainCommand(
      [
        "--data",
        join(dir, "data"),
        "--out",
        out,
        "--steps",
        "6",
        "--checkpoint-every",
        "4",
        "--penalty-images",
        join(dir, "penalty"),
        "--seed",
        "3",
      ],
      log,
      {
        step: stubFactory(made),
        terminal: false,
        logEvery: 2,
        signal: new AbortController().signal,
      },
    );
    assertEquals(result.interrupted, false);
    assertEquals(result.step, 6);
    const model = await readProjectModel(out);
    assertEquals(model.provenance.source, TRAIN_SOURCE);
    assertOk(model.provenance.notes!.includes("6 steps; seed 3"), model.provenance.notes);
    assertOk(model.thresholds !== undefined);
    assertOk((await Deno.stat(join(out, "model.onnx"))).size > 1_000_000);
    const ckpt = await readCheckpoint(join(out, "checkpoint"));
    assertEquals(ckpt.loop.step, 6);
    assertEquals(made.length, 1);
    assertEquals(made[0]!.seen.length, 6);
    assertOk(made[0]!.disposed);
    assertOk(made[0]!.norm !== undefined);
    assertOk(made[0]!.seen.every((b) => b.penalty !== undefined));
    assertEquals(lines.filter((l) => /step \d\/6/.test(l)).length, 3);
  });
});

Deno.test("trainCommand() stopped by the signal leaves a checkpoint that --resume finishes exactly", async () => {
  await withWorkspace(async (dir) => {
    const args = [
      "--data",
      join(dir, "data"),
      "--steps",
      "5",
      "--checkpoint-every",
      "0",
      "--penalty-images",
      join(dir, "penalty"),
    ];
    const whole: StubStep[] = [];
    await trainCommand([...args, "--out", join(dir, "whole")], capture().log, {
      step: stubFactory(whole),
      terminal: false,
      signal: new AbortController().signal,
    });

    const controller = new AbortController();
    const parts: StubStep[] = [];
    const out = join(dir, "parts");
    const first = await trainCommand([...args, "--out", out], capture().log, {
      step: abortingFactory(parts, controller, 1),
      terminal: false,
      signal: controller.signal,
    });
    assertEquals(first.interrupted, true);
    assertEquals(first.step, 2);
    await assertRejects(() => readProjectModel(out), Error);

    const ckptDir = join(out, "checkpoint");
    await assertRejects(
      () =>
        trainCommand(["--resume", ckptDir, "--seed", "9"], capture().log, { step: stubFactory() }),
      InputError,
      "--seed 9 differs from the run's 0",
    );
    const second = await trainCommand(["--resume", ckptDir], capture().log, {
      step: stubFactory(parts),
      terminal: false,
      signal: new AbortController().signal,
    });
    assertEquals([second.interrupted, second.step, second.out], [false, 5, out]);
    assertEquals([...parts[0]!.seen, ...parts[1]!.seen], whole[0]!.seen);
    const a = await readProjectModel(join(dir, "whole"));
    const b = await readProjectModel(out);
    assertEquals(b.stateDict.get("student.conv1.bias"), a.stateDict.get("student.conv1.bias"));
    assertEquals(b.stateDict.get("mean_std.mean"), a.stateDict.get("mean_std.mean"));
    assertEquals(b.thresholds, a.thresholds);
  });
});

Deno.test({
  name: "trainCommand() takes the teacher from --teacher and checks its size",
  ignore: !HAS_TEACHER,
  fn: async () => {
    await withWorkspace(async (dir) => {
      const base = [
        "--data",
        join(dir, "data"),
        "--out",
        join(dir, "model"),
        "--teacher",
        FIXTURE_TEACHER,
      ];
      await assertRejects(
        () => trainCommand([...base, "--size", "m"], capture().log, { step: stubFactory() }),
        InputError,
        "it is a size S teacher",
      );
      const { log, lines } = capture();
      await assertRejects(() => trainCommand(base, log, { step: refuse }), Error, "stopped before");
      assertOk(lines.some((l) => l.includes("teacher loaded")));
      assertOk(!lines.some((l) => l.includes("UNTRAINED")));
    });
  },
});

Deno.test("train --exit-with-parent stops as soon as its standard input closes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePngs(join(dir, "data"), 3, { width: 256, height: 256 });
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "main.ts",
        "train",
        "--exit-with-parent",
        "--data",
        join(dir, "data"),
        "--out",
        join(dir, "model"),
        "--steps",
        "100000",
      ],
      cwd: root,
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    // The parent is "gone": its end of the pipe closes.
    await child.stdin.close();
    const status = await child.status;
    const text = await stderr;
    assertEquals(status.code, 3, text);
    assertOk(text.includes("standard input closed"), text);
    assertEquals(await Deno.stat(join(dir, "model", "model.json")).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train --progress-json writes its progress and end as events parseTrainEvent() reads", async () => {
  await withWorkspace(async (dir) => {
    const written: string[] = [];
    const events = {
      writeSync: (b: Uint8Array) => {
        written.push(new TextDecoder().decode(b));
        return b.length;
      },
    };
    const { log, lines } = capture();
    const out = join(dir, "model");
    const args = ["--data", join(dir, "data"), "--out", out, "--steps", "4", "--progress-json"];
    await trainCommand(args, log, {
      step: stubFactory(),
      logEvery: 2,
      events,
      signal: new AbortController().signal,
    });
    const parsed = written.join("").split("\n").filter((l) => l !== "").map(parseTrainEvent);
    assertEquals(parsed.map((e) => e?.type), ["progress", "progress", "done"]);
    assertEquals(parsed.map((e) => e?.type === "progress" ? e.step : undefined), [2, 4, undefined]);
    const p = parsed[1]!;
    assertOk(p.type === "progress" && p.total === 4 && p.loss !== undefined);
    assertOk(p.etaMs === 0 && p.eta === "0s", JSON.stringify(p));
    assertEquals(parsed[2], {
      type: "done",
      step: 4,
      total: 4,
      interrupted: false,
      checkpointDir: join(out, "checkpoint"),
      out,
    });
    // The lines for people stay as they are.
    assertEquals(lines.filter((l) => /step \d\/4/.test(l)).length, 2);

    written.length = 0;
    await assertRejects(
      () =>
        trainCommand(["--data", join(dir, "nope"), "--out", out, "--progress-json"], log, {
          step: refuse,
          events,
        }),
      InputError,
      "not a folder",
    );
    const error = parseTrainEvent(written.join("").trim());
    assertOk(error?.type === "error" && error.message.includes("not a folder"), written.join(""));
  });
});

Deno.test("TrainProcess() reads the progress, end and error that the train command writes", async () => {
  await withWorkspace(async (dir) => {
    const root = fileURLToPath(new URL("../../", import.meta.url));
    // The train command with a stub step, as a subprocess.
    const script = `
import { trainCommand } from ${JSON.stringify(new URL("./train.ts", import.meta.url).href)};
import { stubFactory } from ${
      JSON.stringify(new URL("../train/_test_utils.ts", import.meta.url).href)
    };
import { createLogger } from ${JSON.stringify(new URL("../core/log.ts", import.meta.url).href)};
await trainCommand(Deno.args, createLogger(), { step: stubFactory(), logEvery: 2 });
`;
    const seen: number[] = [];
    await using run = new TrainProcess({
      command: [Deno.execPath(), "eval", script, "--progress-json"],
      dataDir: join(dir, "data"),
      outDir: join(dir, "model"),
      steps: 4,
      nice: false,
      cwd: root,
      onProgress: (p) => seen.push(p.step),
    });
    const r = await run.result;
    assertEquals([r.ok, r.code, r.error], [true, 0, undefined], r.lastLines.join("\n"));
    assertEquals(seen, [2, 4]);
    assertEquals([r.progress?.step, r.progress?.total, r.progress?.etaMs], [4, 4, 0]);
    assertEquals([r.done?.step, r.done?.out], [4, join(dir, "model")]);
    assertOk(r.lastLines.some((l) => l.includes("model written")));

    // The real command failing on its input: the error event gives the message.
    await using failing = new TrainProcess({
      command: [Deno.execPath(), "run", "-A", "main.ts", "train", "--progress-json"],
      dataDir: join(dir, "nope"),
      outDir: join(dir, "unused"),
      nice: false,
      cwd: root,
    });
    const f = await failing.result;
    assertEquals([f.ok, f.code], [false, 1]);
    assertOk(
      f.error?.startsWith("Cannot train: the trainer exited with code 1: Cannot ") &&
        f.error.includes("not a folder"),
      f.error,
    );
  });
});

Deno.test("trainCommand() --int8 also writes the int8 graph, calibrated on the calibration images", async () => {
  await withWorkspace(async (dir) => {
    const { log, lines } = capture();
    const out = join(dir, "model");
    const result = await trainCommand(
      ["--data", join(dir, "data"), "--out", out, "--steps", "2", "--int8"],
      log,
      { step: stubFactory([]), terminal: false, signal: new AbortController().signal },
    );
    assertEquals(result.interrupted, false);
    const model = await readProjectModel(out);
    const int8 = model.int8;
    assertOk(int8 !== undefined, lines.join("\n"));
    assertOk(model.thresholds !== undefined);
    // Calibrated on the same held-out images as the fp32 thresholds, on its own maps.
    const held = lines.find((l) => l.includes("training data"))?.match(/calibration=(\d+)/);
    assertEquals(int8.calibration.frames, Number(held?.[1]));
    assertOk(lines.some((l) => l.includes("int8 graph written")), lines.join("\n"));
  });
});
