import { join } from "node:path";
import { sha256Hex } from "../core/sha256.ts";
import { zipSync } from "fflate";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { loadTeacher } from "../model/artifact.ts";
import {
  ChecksumError,
  downloadTeacherZip,
  installTeachers,
  resolveTeacherPath,
  TEACHER_ZIP_SHA256,
  TEACHER_ZIP_URLS,
  teacherFileName,
} from "./teacher_fetch.ts";
import { HAS_SHARED_TEACHER, SHARED_TEACHER } from "../../tests/parity.ts";

const FIXTURE_TEACHER = SHARED_TEACHER;
const HAS_FIXTURE = HAS_SHARED_TEACHER;

function fixtureZip(entry = "efficientad_pretrained_weights/pretrained_teacher_small.pth"): {
  zip: Uint8Array;
  pth: Uint8Array;
} {
  const pth = Deno.readFileSync(FIXTURE_TEACHER);
  return {
    zip: zipSync({ [entry]: pth, "efficientad_pretrained_weights/README": new Uint8Array(3) }),
    pth,
  };
}

Deno.test("TEACHER_ZIP_SHA256 and TEACHER_ZIP_URLS name anomalib's teacher archive", () => {
  assertEquals(TEACHER_ZIP_SHA256.length, 64);
  assertOk(
    TEACHER_ZIP_URLS.every((u) =>
      u.endsWith("/efficientad_pretrained_weights/efficientad_pretrained_weights.zip")
    ),
  );
});

Deno.test({
  name: "installTeachers() unpacks and validates the teacher of a zip with the expected hash",
  ignore: !HAS_FIXTURE,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { zip, pth } = fixtureZip();
      const out = join(dir, "teachers");
      const installed = await installTeachers(zip, out, { sha256: await sha256Hex(zip) });
      assertEquals(installed, [{
        size: "s",
        outChannels: 384,
        path: join(out, "pretrained_teacher_small.pth"),
      }]);
      assertEquals(await Deno.readFile(installed[0]!.path), pth);
      assertEquals([...Deno.readDirSync(out)].map((e) => e.name), ["pretrained_teacher_small.pth"]);
      const teacher = await loadTeacher(installed[0]!.path);
      assertEquals(teacher.size, "s");
      assertEquals(await resolveTeacherPath(out, "s"), installed[0]!.path);
      assertEquals(await resolveTeacherPath(out, "m"), out);
      assertEquals(await resolveTeacherPath(installed[0]!.path, "m"), installed[0]!.path);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "installTeachers() refuses a zip whose sha256 differs, naming both hashes",
  ignore: !HAS_FIXTURE,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { zip } = fixtureZip();
      const actual = await sha256Hex(zip);
      const e = await assertRejects(
        () => installTeachers(zip, join(dir, "t")),
        ChecksumError,
        actual,
      );
      assertOk(e.message.includes(TEACHER_ZIP_SHA256), e.message);
      assertEquals([...Deno.readDirSync(dir)], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "installTeachers() rejects a zip without teachers or with a teacher of the wrong size",
  ignore: !HAS_FIXTURE,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const empty = zipSync({ "readme.txt": new Uint8Array(1) });
      await assertRejects(
        async () => installTeachers(empty, dir, { sha256: await sha256Hex(empty) }),
        Error,
        "holds neither pretrained_teacher_small.pth nor pretrained_teacher_medium.pth",
      );
      const { zip } = fixtureZip(teacherFileName("m"));
      await assertRejects(
        async () => installTeachers(zip, dir, { sha256: await sha256Hex(zip) }),
        Error,
        "size S teacher",
      );
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("downloadTeacherZip() tries each URL and explains how to go on offline", async () => {
  const offline = (() => Promise.reject(new TypeError("dns error: no internet"))) as typeof fetch;
  const e = await assertRejects(
    () => downloadTeacherZip({ fetch: offline, urls: ["https://a.example/z.zip"] }),
    Error,
    "https://a.example/z.zip: dns error: no internet",
  );
  assertOk(e.message.includes("--from <zip>"), e.message);
  const calls: string[] = [];
  const flaky = ((url: string) => {
    calls.push(url);
    return Promise.resolve(
      url.includes("first")
        ? new Response("missing", { status: 404 })
        : new Response(new Uint8Array([1, 2, 3])),
    );
  }) as typeof fetch;
  const bytes = await downloadTeacherZip({
    fetch: flaky,
    urls: ["https://first/z", "https://second/z"],
  });
  assertEquals(bytes, new Uint8Array([1, 2, 3]));
  assertEquals(calls, ["https://first/z", "https://second/z"]);
});
