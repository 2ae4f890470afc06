import { join } from "node:path";
import { zipSync } from "fflate";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../core/errors.ts";
import { createLogger } from "../core/log.ts";
import { ChecksumError } from "../train/teacher_fetch.ts";
import { sha256Hex } from "../core/sha256.ts";
import { writePngs } from "../train/_test_utils.ts";
import { trainCommand } from "./train.ts";
import { teacherCommand } from "./teacher.ts";
import { HAS_SHARED_TEACHER, SHARED_TEACHER } from "../../tests/parity.ts";

const FIXTURE_TEACHER = SHARED_TEACHER;
const HAS_TEACHER = HAS_SHARED_TEACHER;

const quiet = createLogger({ sink: () => {} });

Deno.test("teacherCommand() rejects other subcommands and flags", async () => {
  await assertRejects(() => teacherCommand([], quiet), InputError, "expected `teacher fetch");
  await assertRejects(() => teacherCommand(["get"], quiet), InputError, "Cannot run teacher get");
  await assertRejects(
    () => teacherCommand(["fetch", "--to", "x"], quiet),
    InputError,
    "Cannot parse",
  );
  await assertRejects(
    () => teacherCommand(["fetch", "--from", "/nonexistent.zip"], quiet),
    InputError,
    "Cannot read /nonexistent.zip",
  );
});

Deno.test("teacherCommand() fetch reports an offline download plainly", async () => {
  const offline = (() => Promise.reject(new TypeError("network unreachable"))) as typeof fetch;
  await assertRejects(
    () =>
      teacherCommand(["fetch", "--out", "/tmp/never-written"], quiet, {
        fetch: offline,
        urls: ["https://x.example/a.zip"],
      }),
    Error,
    "offline?",
  );
});

Deno.test({
  name: "teacherCommand() fetch --from installs a zip's teacher for train --teacher",
  ignore: !HAS_TEACHER,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const zip = zipSync({
        "efficientad_pretrained_weights/pretrained_teacher_small.pth": await Deno.readFile(
          FIXTURE_TEACHER,
        ),
      });
      const zipPath = join(dir, "w.zip");
      await Deno.writeFile(zipPath, zip);
      const out = join(dir, "teachers");
      await assertRejects(
        () => teacherCommand(["fetch", "--from", zipPath, "--out", out], quiet),
        ChecksumError,
        "expected c09aeaa2",
      );
      const lines: string[] = [];
      const installed = await teacherCommand(
        ["fetch", "--from", zipPath, "--out", out],
        createLogger({ sink: (l) => lines.push(l) }),
        { sha256: await sha256Hex(zip) },
      );
      assertEquals(installed.map((t) => t.size), ["s"]);
      assertOk(lines.some((l) => l.includes(`--teacher ${out}`)));
      await writePngs(join(dir, "data"), 2, { width: 8, height: 8 });
      const trainLines: string[] = [];
      await assertRejects(
        () =>
          trainCommand(
            ["--data", join(dir, "data"), "--out", join(dir, "m"), "--teacher", out],
            createLogger({ sink: (l) => trainLines.push(l) }),
            { step: () => Promise.reject(new Error("stopped before training")) },
          ),
        Error,
        "stopped before training",
      );
      assertOk(
        trainLines.some((l) => l.includes(`teacher loaded path=${installed[0]!.path}`)),
        trainLines.join("\n"),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
