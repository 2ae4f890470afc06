import onnxProto from "onnx-proto";
import { assertAlmostEquals, assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { resolveConfig } from "../model/config.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { graphMaps } from "./graph_maps.ts";
import {
  prepareGraph,
  quantizableTensors,
  quantizeGraph,
  quantizeWeights,
  uint8Params,
} from "./qdq_graph.ts";

const { onnx } = onnxProto;
const fp32 = buildEfficientAdGraph(syntheticModel(resolveConfig({ teacherOutChannels: 8 })));
const tensors = quantizableTensors(fp32);
const int8 = quantizeGraph(fp32, new Map(tensors.map((t) => [t, { min: -2, max: 6 }])));
const fpModel = onnx.ModelProto.decode(fp32);
const q = onnx.ModelProto.decode(int8);

Deno.test("quantizeWeights() per channel: scale max|w|/127, round trip within half a step", () => {
  const w = Float32Array.of(0.5, -1, 0.25, 0.001, 0.002, -0.003, 0, 0, 0);
  const { values, scales } = quantizeWeights(w, 3);
  assertAlmostEquals(scales[0]!, 1 / 127, 1e-9);
  assertAlmostEquals(scales[1]!, 0.003 / 127, 1e-9);
  assertEquals(scales[2], 1);
  assertEquals([values[1], values[5]], [-127, -127]);
  for (let i = 0; i < w.length; i++) {
    const s = scales[Math.floor(i / 3)]!;
    assertOk(Math.abs(values[i]! * s - w[i]!) <= s / 2 + 1e-9, `element ${i}`);
  }
});

Deno.test("quantizeWeights() with 7 bits stays in [-63, 63]", () => {
  const { values, scales } = quantizeWeights(Float32Array.of(0.63, -0.63, 0.1), 1, 7);
  assertAlmostEquals(scales[0]!, 0.01, 1e-7);
  assertEquals([...values], [63, -63, 10]);
});

Deno.test("quantizeGraph() stores 7-bit weights by default", () => {
  for (const t of q.graph!.initializer!.filter((t) => t.name!.endsWith("_int8"))) {
    const v = new Int8Array(new Uint8Array(t.rawData!).buffer);
    assertOk(v.every((x) => x >= -63 && x <= 63), t.name!);
    assertOk(v.some((x) => x === 63 || x === -63), t.name!);
  }
});

Deno.test("uint8Params() holds 0 exactly and maps the range onto 0..255", () => {
  assertEquals(uint8Params({ min: 0, max: 2.55 }).zeroPoint, 0);
  assertAlmostEquals(uint8Params({ min: 0, max: 2.55 }).scale, 0.01, 1e-7);
  const p = uint8Params({ min: -1, max: 3 });
  assertEquals(p.zeroPoint, 64);
  // A positive-only range still includes 0.
  assertEquals(uint8Params({ min: 1, max: 2 }).zeroPoint, 0);
  assertThrows(() => uint8Params({ min: NaN, max: 1 }), RangeError, "not a finite range");
  assertThrows(() => uint8Params({ min: 2, max: 1 }), RangeError, "not a finite range");
});

Deno.test("quantizeGraph() keeps the graph's interface", () => {
  assertEquals(q.graph!.input!.map((i) => i.name), fpModel.graph!.input!.map((i) => i.name));
  assertEquals(q.graph!.output!.map((o) => o.name), [
    "anomaly_map",
    "pred_score",
    "map_st",
    "map_ae",
  ]);
});

Deno.test("quantizeGraph() gives every Conv int8 per-channel weights and an int32 bias", () => {
  const inits = new Map(q.graph!.initializer!.map((t) => [t.name!, t]));
  const producer = new Map(q.graph!.node!.map((n) => [n.output![0]!, n]));
  const convs = q.graph!.node!.filter((n) => n.opType === "Conv");
  assertEquals(convs.length, fpModel.graph!.node!.filter((n) => n.opType === "Conv").length);
  for (const c of convs) {
    const [x, w, b] = c.input!.map((i) => producer.get(i)!);
    assertEquals([x!.opType, w!.opType, b!.opType], Array(3).fill("DequantizeLinear"));
    const wInt = inits.get(w!.input![0]!)!;
    assertEquals(wInt.dataType, onnx.TensorProto.DataType.INT8);
    const channels = Number(wInt.dims![0]);
    assertEquals(inits.get(w!.input![1]!)!.dims!.map(Number), [channels]);
    assertEquals(inits.get(b!.input![0]!)!.dataType, onnx.TensorProto.DataType.INT32);
    // Bias scale = input scale * weight scale, per channel.
    const xs = new Float32Array(new Uint8Array(inits.get(x!.input![1]!)!.rawData!).buffer)[0]!;
    const ws = new Float32Array(new Uint8Array(inits.get(w!.input![1]!)!.rawData!).buffer);
    const bs = new Float32Array(new Uint8Array(inits.get(b!.input![1]!)!.rawData!).buffer);
    for (let k = 0; k < channels; k++) assertEquals(bs[k], Math.fround(xs * ws[k]!));
  }
  // No float32 conv weight is left in the file.
  assertEquals(q.graph!.initializer!.filter((t) => /\.weight$/.test(t.name!)).length, 0);
});

Deno.test("quantizeGraph() puts the Q/DQ pair after the Relu of a Conv", () => {
  const consumers = (v: string) => q.graph!.node!.filter((n) => n.input!.includes(v));
  for (const relu of q.graph!.node!.filter((n) => n.opType === "Relu")) {
    assertEquals(consumers(relu.output![0]!).map((n) => n.opType), ["QuantizeLinear"]);
  }
});

Deno.test("quantizeGraph() throws without a range for a quantized tensor", () => {
  assertThrows(() => quantizeGraph(fp32, new Map()), RangeError, "no range for");
});

Deno.test("prepareGraph() folds the teacher's normalisation into its last Conv, same maps", async () => {
  const folded = prepareGraph(fp32);
  const ops = (m: onnxProto.onnx.ModelProto) => m.graph!.node!.map((n) => n.opType);
  const count = (list: (string | null | undefined)[], op: string) =>
    list.filter((o) => o === op).length;
  const before = ops(fpModel);
  const after = ops(onnx.ModelProto.decode(folded));
  // The input normalisation (Sub, Div on the image) stays; the teacher's goes.
  assertEquals(count(after, "Sub"), count(before, "Sub") - 1);
  assertEquals(count(after, "Div"), count(before, "Div") - 1);
  const frame = {
    shape: [1, 3, 256, 256],
    data: Float32Array.from({ length: 3 * 256 * 256 }, (_, i) => (i % 251) / 251),
  };
  const [a] = await graphMaps(fp32, [frame], { intraOpThreads: 2 });
  const [b] = await graphMaps(folded, [frame], { intraOpThreads: 2 });
  let worst = 0, hi = 0;
  for (let i = 0; i < a!.st.data.length; i++) {
    worst = Math.max(worst, Math.abs(a!.st.data[i]! - b!.st.data[i]!));
    hi = Math.max(hi, Math.abs(a!.st.data[i]!));
  }
  assertOk(worst <= 1e-4 * hi, `worst ${worst} of ${hi}`);
});
