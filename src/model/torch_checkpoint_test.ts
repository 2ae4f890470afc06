import { strFromU8, strToU8, unzipSync, zipSync } from "fflate";
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { ModelFormatError } from "../core/errors.ts";
import { readNpy } from "../core/npy.ts";
import { resolveConfig } from "./config.ts";
import { type StateDict, validateStateDict } from "./state_dict.ts";
import { parseTorchCheckpoint, readTorchCheckpoint } from "./torch_checkpoint.ts";

// Small checkpoints made by tools/fixtures/make_torch_files.py with torch 2.13.
const FIXTURES = new URL("../../tests/fixtures/torch/", import.meta.url);
// anomalib's reference files live beside the project: ../shared from the project root.
const SHARED = new URL("../shared/fixtures/efficientad-s/", new URL("../../", import.meta.url));
const HAS_SHARED = exists(SHARED);
const SKIP_SHARED = HAS_SHARED ? "" : " (skipped: ../shared/fixtures/efficientad-s is absent)";

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

function pathOf(url: URL): string {
  return decodeURIComponent(url.pathname);
}

function fixture(name: string): string {
  return pathOf(new URL(name, FIXTURES));
}

function fixtureBytes(name: string): Uint8Array {
  return Deno.readFileSync(fixture(name));
}

/** Compares tensors with the fixture tool's expected .npy values, element by element. */
async function assertExpected(dict: StateDict, name: string, keys: readonly string[]) {
  for (const key of keys) {
    const want = await readNpy(fixture(`expected/${name}/${key}.npy`));
    const got = dict.get(key);
    assertOk(got, `missing key ${key}`);
    assertEquals(got.shape, want.shape, `shape of ${key}`);
    assertEquals(got.data.length, want.data.length, `length of ${key}`);
    for (let i = 0; i < want.data.length; i++) {
      if (!Object.is(got.data[i], want.data[i])) {
        throw new Error(`${name} ${key}[${i}]: got ${got.data[i]}, expected ${want.data[i]}`);
      }
    }
  }
}

/** Rewrites a fixture's zip entries (names without the folder) under a folder. */
function rezip(
  name: string,
  edit: (entries: Map<string, Uint8Array>) => void,
  options: { folder?: string; level?: 0 | 6 } = {},
): Uint8Array {
  const files = unzipSync(fixtureBytes(name));
  const entries = new Map<string, Uint8Array>();
  for (const [path, data] of Object.entries(files)) {
    entries.set(path.slice(path.indexOf("/") + 1), data);
  }
  edit(entries);
  const folder = options.folder ?? "archive";
  const out: Record<string, Uint8Array> = {};
  for (const [rest, data] of entries) out[`${folder}/${rest}`] = data;
  return zipSync(out, { level: options.level ?? 0 });
}

Deno.test("parseTorchCheckpoint() reads float32 and float64 storages", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  await assertExpected(dict, "dtypes", ["f32", "f64"]);
});

Deno.test("parseTorchCheckpoint() reads float16 storages, subnormals and infinities too", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  await assertExpected(dict, "dtypes", ["f16", "f16_special", "scalar_f16"]);
  assertEquals(Array.from(dict.get("f16_special")!.data).slice(1, 3), [Infinity, -Infinity]);
});

Deno.test("parseTorchCheckpoint() reads bfloat16 storages", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  await assertExpected(dict, "dtypes", ["bf16"]);
});

Deno.test("parseTorchCheckpoint() converts integer and bool storages to float32", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  await assertExpected(dict, "dtypes", ["i64", "i32", "i16", "i8", "u8", "bool"]);
  assertEquals(Array.from(dict.get("i64")!.data), [-3, 0, 7, 2 ** 40]);
});

Deno.test("parseTorchCheckpoint() reads 0-d tensors with shape [] and empty tensors", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  await assertExpected(dict, "dtypes", ["scalar", "empty"]);
  assertEquals(dict.get("scalar")!.shape, []);
  assertEquals(Array.from(dict.get("scalar")!.data), [2.5]);
  assertEquals(dict.get("empty")!.shape, [0, 3]);
});

Deno.test("parseTorchCheckpoint() keeps the pickle's key order", async () => {
  const dict = await readTorchCheckpoint(fixture("dtypes.pth"));
  assertEquals([...dict.keys()], [
    "f32",
    "f16",
    "bf16",
    "f64",
    "i64",
    "i32",
    "i16",
    "i8",
    "u8",
    "bool",
    "scalar",
    "scalar_f16",
    "empty",
    "f16_special",
  ]);
});

Deno.test("parseTorchCheckpoint() gathers transposed and permuted views into row-major order", async () => {
  const dict = await readTorchCheckpoint(fixture("views.pth"));
  await assertExpected(dict, "views", ["base", "transposed", "permuted", "half_t"]);
  assertEquals(Array.from(dict.get("transposed")!.data.subarray(0, 5)), [0, 6, 12, 18, 1]);
});

Deno.test("parseTorchCheckpoint() honours storage offsets of views sharing a storage", async () => {
  const dict = await readTorchCheckpoint(fixture("views.pth"));
  await assertExpected(dict, "views", ["slice", "row", "step", "element", "tail"]);
  assertEquals(Array.from(dict.get("slice")!.data), [8, 9, 10, 14, 15, 16]);
  assertEquals(dict.get("element")!.shape, []);
  // Views get their own copies: writing one leaves the others intact.
  dict.get("base")!.data[8] = -1;
  assertEquals(dict.get("slice")!.data[0], 8);
});

Deno.test("parseTorchCheckpoint() repeats values along zero strides", async () => {
  const dict = await readTorchCheckpoint(fixture("views.pth"));
  await assertExpected(dict, "views", ["expanded"]);
  assertEquals(Array.from(dict.get("expanded")!.data), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
});

Deno.test("parseTorchCheckpoint() reads nn.Parameter values and tensors with Python attributes", async () => {
  const dict = await readTorchCheckpoint(fixture("params.pth"));
  const keys = ["0.weight", "0.bias", "1.weight", "1.bias", "grad_leaf", "tagged"];
  await assertExpected(dict, "params", [...keys, "num_batches_tracked"]);
  assertEquals([...dict.keys()], [...keys, "num_batches_tracked"]);
});

Deno.test("parseTorchCheckpoint() reads uint16 and float8 tensors saved as untyped storages", async () => {
  const dict = await readTorchCheckpoint(fixture("v3.pth"));
  await assertExpected(dict, "v3", ["u16", "f8e4m3", "f8e5m2"]);
  assertEquals(Array.from(dict.get("u16")!.data), [0, 1, 65535]);
});

Deno.test("parseTorchCheckpoint() swaps the bytes of big-endian archives", async () => {
  const dict = await readTorchCheckpoint(fixture("big_endian.pth"));
  const keys = ["f32", "f16", "bf16", "f64", "i64", "i32", "i16", "scalar", "f16_special"];
  await assertExpected(dict, "dtypes", keys);
});

Deno.test("parseTorchCheckpoint() reads any archive folder name and deflated entries", async () => {
  const bytes = rezip("dtypes.pth", () => {}, { folder: "weights-v2", level: 6 });
  await assertExpected(parseTorchCheckpoint(bytes, "x.pth"), "dtypes", ["f32", "f16", "i64"]);
});

Deno.test('parseTorchCheckpoint() finds the state dict of a Lightning checkpoint and strips "model."', async () => {
  const dict = await readTorchCheckpoint(fixture("lightning.pth"));
  const keys = [
    "teacher.conv1.weight",
    "teacher.conv1.bias",
    "quantiles.qa_st",
    "image_threshold.value",
  ];
  assertEquals([...dict.keys()], keys);
  await assertExpected(dict, "lightning", keys);
});

Deno.test('parseTorchCheckpoint() finds a state dict nested under "model"', async () => {
  const dict = await readTorchCheckpoint(fixture("model_key.pth"));
  assertEquals([...dict.keys()], ["conv1.weight"]);
  assertEquals(dict.get("conv1.weight")!.shape, [4, 3, 2, 2]);
});

Deno.test('parseTorchCheckpoint() keeps "model." keys when stripping would clash', async () => {
  const dict = await readTorchCheckpoint(fixture("clash.pth"));
  assertEquals([...dict.keys()], ["model.x", "x"]);
});

Deno.test("parseTorchCheckpoint() rejects a checkpoint with several dicts of tensors", async () => {
  await assertRejects(
    () => readTorchCheckpoint(fixture("ambiguous.pth")),
    ModelFormatError,
    'ambiguous checkpoint: dicts of tensors under "a", "b"',
  );
});

Deno.test("parseTorchCheckpoint() rejects the legacy format and says how to re-save it", async () => {
  const e = await assertRejects(
    () => readTorchCheckpoint(fixture("legacy.pth")),
    ModelFormatError,
    "legacy checkpoint format",
  );
  assertOk(e.message.includes("legacy.pth"), e.message);
  assertOk(e.message.includes("torch.save(torch.load(old_path), new_path)"), e.message);
});

Deno.test("parseTorchCheckpoint() rejects a pickled nn.Module by naming its class", async () => {
  await assertRejects(
    () => readTorchCheckpoint(fixture("module.pth")),
    ModelFormatError,
    "Python global torch.nn.modules.linear.Linear",
  );
});

Deno.test("parseTorchCheckpoint() rejects TorchScript archives", async () => {
  await assertRejects(
    () => readTorchCheckpoint(fixture("torchscript.pt")),
    ModelFormatError,
    "TorchScript archive",
  );
});

Deno.test("parseTorchCheckpoint() rejects complex tensors as an unsupported dtype", async () => {
  await assertRejects(
    () => readTorchCheckpoint(fixture("complex.pth")),
    ModelFormatError,
    'tensor "c" has dtype complex64, which cannot be converted to float32',
  );
});

Deno.test("parseTorchCheckpoint() refuses globals outside the allowed set without calling them", () => {
  // PROTO 2; GLOBAL os.system; BINUNICODE "echo pwned"; TUPLE1; REDUCE; STOP
  const pickle = new Uint8Array([
    0x80,
    2,
    ...strToU8("cos\nsystem\n"),
    0x58,
    10,
    0,
    0,
    0,
    ...strToU8("echo pwned"),
    0x85,
    0x52,
    0x2e,
  ]);
  const bytes = zipSync({ "evil/data.pkl": pickle }, { level: 0 });
  assertThrows(
    () => parseTorchCheckpoint(bytes, "evil.pth"),
    ModelFormatError,
    "Cannot load model evil.pth: cannot read Python global os.system",
  );
});

Deno.test("parseTorchCheckpoint() rejects empty and non-zip input", () => {
  assertThrows(() => parseTorchCheckpoint(new Uint8Array(0), "e.pth"), ModelFormatError, "empty");
  assertThrows(
    () => parseTorchCheckpoint(strToU8("hello, world"), "t.pth"),
    ModelFormatError,
    "Cannot load model t.pth: not a PyTorch zip checkpoint (no zip signature)",
  );
  const zip = zipSync({ "readme.txt": strToU8("hi") });
  assertThrows(() => parseTorchCheckpoint(zip, "z.pth"), ModelFormatError, "no <folder>/data.pkl");
});

Deno.test("parseTorchCheckpoint() rejects truncated files", () => {
  const bytes = fixtureBytes("dtypes.pth");
  for (const length of [4, 30, 100, 1000, bytes.length >> 1, bytes.length - 30, bytes.length - 1]) {
    assertThrows(
      () => parseTorchCheckpoint(bytes.subarray(0, length), "cut.pth"),
      ModelFormatError,
      "Cannot load model cut.pth:",
    );
  }
  assertThrows(
    () => parseTorchCheckpoint(bytes.subarray(0, bytes.length - 10), "cut.pth"),
    ModelFormatError,
    "corrupt or truncated zip archive",
  );
});

Deno.test("parseTorchCheckpoint() rejects an impossible zip directory without walking it", () => {
  const bytes = fixtureBytes("views.pth").slice();
  const view = new DataView(bytes.buffer);
  let at = bytes.length - 22;
  while (at > 0 && view.getUint32(at, true) !== 0x06064b50) at--; // torch writes zip64
  assertOk(at > 0, "no zip64 end record");
  view.setUint32(at + 32, 50_000_000, true); // entry count
  assertThrows(
    () => parseTorchCheckpoint(bytes, "dir.pth"),
    ModelFormatError,
    "a directory of 50000000 entries",
  );
});

Deno.test("parseTorchCheckpoint() reports corrupt bytes as ModelFormatError, never a crash", () => {
  const good = fixtureBytes("views.pth");
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let failures = 0;
  const warn = console.warn; // pickleparser warns about huge (corrupt) integers
  console.warn = () => {};
  try {
    for (let trial = 0; trial < 400; trial++) {
      const bytes = good.slice();
      const flips = 1 + Math.floor(random() * 4);
      for (let k = 0; k < flips; k++) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      try {
        parseTorchCheckpoint(bytes, "flip.pth"); // a flip inside tensor data still parses
      } catch (e) {
        if (!(e instanceof ModelFormatError)) throw e;
        failures++;
      }
    }
  } finally {
    console.warn = warn;
  }
  assertOk(failures > 0, "no corruption was detected at all");
});

Deno.test("parseTorchCheckpoint() rejects a corrupt pickle", () => {
  const bytes = rezip("dtypes.pth", (entries) => {
    const pickle = entries.get("data.pkl")!;
    entries.set("data.pkl", pickle.subarray(0, pickle.length >> 1));
  });
  assertThrows(
    () => parseTorchCheckpoint(bytes, "p.pth"),
    ModelFormatError,
    "corrupt pickle archive/data.pkl",
  );
});

Deno.test("parseTorchCheckpoint() rejects a missing storage", () => {
  const bytes = rezip("dtypes.pth", (entries) => entries.delete("data/1"));
  assertThrows(
    () => parseTorchCheckpoint(bytes, "m.pth"),
    ModelFormatError,
    'missing storage archive/data/1 for tensor "f16"',
  );
});

Deno.test("parseTorchCheckpoint() rejects a storage shorter than its size", () => {
  const bytes = rezip("dtypes.pth", (entries) => {
    entries.set("data/0", entries.get("data/0")!.subarray(0, 10));
  });
  assertThrows(
    () => parseTorchCheckpoint(bytes, "s.pth"),
    ModelFormatError,
    "storage archive/data/0 holds 10 bytes, expected 24 (truncated)",
  );
});

Deno.test("parseTorchCheckpoint() rejects a view reaching past its storage", () => {
  const bytes = rezip("views.pth", (entries) => {
    // The first persistent id ends ... "cpu" BINPUT n BININT1 24 TUPLE: make the storage 12.
    const pickle = entries.get("data.pkl")!.slice();
    const at = strFromU8(pickle, true).indexOf("cpu") + 5;
    assertEquals([pickle[at], pickle[at + 1], pickle[at + 2]], [0x4b, 24, 0x74]);
    pickle[at + 1] = 12;
    entries.set("data.pkl", pickle);
  });
  assertThrows(
    () => parseTorchCheckpoint(bytes, "v.pth"),
    ModelFormatError,
    'tensor "base" (size [4, 6], offset 0, stride [6, 1]) reads element 23 of storage',
  );
});

Deno.test("parseTorchCheckpoint() rejects an unknown byte order", () => {
  const bytes = rezip("dtypes.pth", (entries) => entries.set("byteorder", strToU8("middle")));
  assertThrows(
    () => parseTorchCheckpoint(bytes, "b.pth"),
    ModelFormatError,
    'unknown byte order "middle" in archive/byteorder',
  );
});

Deno.test("readTorchCheckpoint() names a missing file", async () => {
  await assertRejects(
    () => readTorchCheckpoint(fixture("no-such-file.pth")),
    ModelFormatError,
    "no-such-file.pth: file not found",
  );
});

// anomalib's reference weights (../shared/fixtures/efficientad-s).

interface Meta {
  state_dict_keys: string[];
  quantiles: Record<string, number>;
}

async function sharedMeta(): Promise<Meta> {
  return JSON.parse(await Deno.readTextFile(new URL("meta.json", SHARED))) as Meta;
}

Deno.test({
  name: `readTorchCheckpoint() reads anomalib's model.pth into a valid state dict${SKIP_SHARED}`,
  ignore: !HAS_SHARED,
  async fn() {
    const path = pathOf(new URL("model.pth", SHARED));
    const dict = await readTorchCheckpoint(path);
    const meta = await sharedMeta();
    assertEquals([...dict.keys()], meta.state_dict_keys);
    validateStateDict(dict, resolveConfig(), path);
    assertEquals(dict.get("mean_std.mean")!.shape, [1, 384, 1, 1]);
    for (const [name, value] of Object.entries(meta.quantiles)) {
      const q = dict.get(`quantiles.${name}`);
      assertOk(q, `missing quantiles.${name}`);
      assertEquals(q.shape, []);
      assertEquals(q.data[0], value);
    }
  },
});

Deno.test({
  name: `readTorchCheckpoint() reads teacher.pth with model.pth's teacher weights${SKIP_SHARED}`,
  ignore: !HAS_SHARED,
  async fn() {
    const teacher = await readTorchCheckpoint(pathOf(new URL("teacher.pth", SHARED)));
    const model = await readTorchCheckpoint(pathOf(new URL("model.pth", SHARED)));
    const keys = [1, 2, 3, 4].flatMap((i) => [`conv${i}.weight`, `conv${i}.bias`]);
    assertEquals([...teacher.keys()], keys);
    for (const key of keys) {
      const t = teacher.get(key)!;
      const m = model.get(`teacher.${key}`)!;
      assertEquals(t.shape, m.shape);
      assertOk(t.data.every((v, i) => v === m.data[i]), `values of ${key} differ`);
    }
  },
});
