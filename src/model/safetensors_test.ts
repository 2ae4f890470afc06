import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { ModelFormatError } from "../core/errors.ts";
import { type Tensor, tensor } from "../core/tensor.ts";
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
} from "./safetensors.ts";

/** A safetensors file from a header object and raw data bytes (no header padding). */
function rawFile(header: unknown, data: Uint8Array | number[] = []): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(out.buffer).setUint16(i * 2, v, true));
  return out;
}

Deno.test("encodeSafetensors() and parseSafetensors() round-trip float32 tensors and metadata", () => {
  const tensors = new Map<string, Tensor>([
    ["b.weight", tensor([2, 3], new Float32Array([1, -2, 3.5, 1e-30, -0, 65504]))],
    ["a.scalar", tensor([], new Float32Array([0.125]))],
    ["c.empty", tensor([0, 4])],
  ]);
  const bytes = encodeSafetensors(tensors, { metadata: { format: "pt", note: "ü" } });
  const back = parseSafetensors(bytes, "model.safetensors");
  assertEquals(back.metadata, { format: "pt", note: "ü" });
  assertEquals([...back.tensors.keys()], ["a.scalar", "b.weight", "c.empty"]);
  for (const [name, t] of tensors) assertEquals(back.tensors.get(name), t);
});

Deno.test("encodeSafetensors() writes the reference layout with an 8-byte aligned header", () => {
  const bytes = encodeSafetensors(new Map([["x", tensor([2], new Float32Array([1, 2]))]]));
  const json = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  assertEquals(json.length, 54);
  const padded = json + "  "; // to 56, a multiple of 8
  const view = new DataView(bytes.buffer);
  assertEquals(view.getBigUint64(0, true), 56n);
  assertEquals(new TextDecoder().decode(bytes.subarray(8, 64)), padded);
  assertEquals([view.getFloat32(64, true), view.getFloat32(68, true)], [1, 2]);
  assertEquals(bytes.length, 72);
});

Deno.test("parseSafetensors() converts F16, BF16 and F64 to float32", () => {
  const f64 = new Uint8Array(16);
  new DataView(f64.buffer).setFloat64(0, Math.PI, true);
  new DataView(f64.buffer).setFloat64(8, -1e300, true);
  const data = [
    ...u16([0x3c00, 0xc000, 0x3555, 0x7c00]), // F16: 1, -2, 0.333251953125, Infinity
    ...u16([0x3f80, 0xc040, 0x3eab]), // BF16: 1, -3, 0.333984375
    ...f64,
  ];
  const file = rawFile({
    "__metadata__": { format: "pt" },
    half: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] },
    brain: { dtype: "BF16", shape: [3], data_offsets: [8, 14] },
    double: { dtype: "F64", shape: [2], data_offsets: [14, 30] },
  }, data);
  const { tensors, metadata } = parseSafetensors(file, "mixed.safetensors");
  assertEquals(metadata, { format: "pt" });
  assertEquals(tensors.get("half"), {
    shape: [2, 2],
    data: new Float32Array([1, -2, 0.333251953125, Infinity]),
  });
  assertEquals([...tensors.get("brain")!.data], [1, -3, 0.333984375]);
  assertEquals([...tensors.get("double")!.data], [Math.fround(Math.PI), -Infinity]);
});

Deno.test("parseSafetensors() accepts a header padded with spaces and no metadata", () => {
  const json = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   ';
  const enc = new TextEncoder().encode(json);
  const file = new Uint8Array(8 + enc.length + 4);
  new DataView(file.buffer).setBigUint64(0, BigInt(enc.length), true);
  file.set(enc, 8);
  new DataView(file.buffer).setFloat32(8 + enc.length, 7.5, true);
  const { tensors, metadata } = parseSafetensors(file, "p.safetensors");
  assertEquals(metadata, {});
  assertEquals([...tensors.get("w")!.data], [7.5]);
});

Deno.test("parseSafetensors() throws ModelFormatError naming the file for corrupt input", () => {
  const ok = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
  const tooLong = new Uint8Array(16);
  new DataView(tooLong.buffer).setBigUint64(0, 1000n, true);
  const notUtf8 = rawFile({});
  notUtf8[8] = 0xff;
  const cases: [string, Uint8Array, string][] = [
    ["short", new Uint8Array(5), "too short for the header length"],
    ["header length", tooLong, "header length 1000 exceeds the 8 bytes after it"],
    ["not utf-8", notUtf8, "not UTF-8 JSON"],
    ["not json", rawFile("x").map((b, i) => (i === 8 ? 0x7b : b)), "not UTF-8 JSON"],
    ["array header", rawFile([1, 2]), "the header is not a JSON object"],
    ["metadata type", rawFile({ __metadata__: { a: 1 } }), "__metadata__.a is not a string"],
    [
      "dtype",
      rawFile({ w: { ...ok, dtype: "I64", data_offsets: [0, 16] } }, new Uint8Array(16)),
      'tensor "w" has dtype I64, which is not supported',
    ],
    [
      "no dtype",
      rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      'tensor "w" has no dtype',
    ],
    [
      "shape",
      rawFile({ w: { ...ok, shape: [2, -1] } }, new Uint8Array(8)),
      'tensor "w" has shape [2,-1]',
    ],
    [
      "offsets",
      rawFile({ w: { ...ok, data_offsets: [0] } }, new Uint8Array(8)),
      "expected [begin, end]",
    ],
    [
      "reversed",
      rawFile({ w: { ...ok, data_offsets: [8, 0] } }, new Uint8Array(8)),
      "begin after end",
    ],
    [
      "size",
      rawFile({ w: { ...ok, data_offsets: [0, 12] } }, new Uint8Array(12)),
      "needs 8 bytes, data_offsets [0, 12] give 12",
    ],
    [
      "truncated",
      rawFile({ w: ok }, new Uint8Array(6)),
      "truncated: the tensors need 8 data bytes, the file has 6",
    ],
    [
      "trailing",
      rawFile({ w: ok }, new Uint8Array(10)),
      "2 bytes after the last tensor belong to no tensor",
    ],
    [
      "gap",
      rawFile({ w: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)),
      "bytes 0 to 4 of the data belong to no tensor",
    ],
    [
      "overlap",
      rawFile({ w: ok, v: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)),
      'tensor "v" overlaps another tensor',
    ],
  ];
  for (const [what, bytes, problem] of cases) {
    const e = assertThrows(
      () => parseSafetensors(bytes, "/models/bad.safetensors"),
      ModelFormatError,
      problem,
    );
    assertOk(e.message.startsWith("Cannot load model /models/bad.safetensors: "), what);
  }
});

Deno.test("encodeSafetensors() rejects reserved names and data that does not fit", () => {
  assertThrows(
    () => encodeSafetensors(new Map([["__metadata__", tensor([1])]])),
    RangeError,
    "not a valid tensor name",
  );
  assertThrows(
    () => encodeSafetensors(new Map([["w", { shape: [3], data: new Float32Array(2) }]])),
    RangeError,
    'tensor "w" has 2 values for shape [3]',
  );
});

Deno.test("writeSafetensors() and readSafetensors() round-trip a file; a missing one is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/w.safetensors`;
    const tensors = new Map([["t", tensor([2, 2], new Float32Array([1, 2, 3, 4]))]]);
    await writeSafetensors(path, tensors, { metadata: { k: "v" } });
    const back = await readSafetensors(path);
    assertEquals(back.tensors, tensors);
    assertEquals(back.metadata, { k: "v" });
    await assertRejects(
      () => readSafetensors(`${dir}/missing.safetensors`),
      ModelFormatError,
      `Cannot load model ${dir}/missing.safetensors: the file does not exist`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
