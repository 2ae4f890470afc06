/**
 * The QDQ pass: rewrites a float32 ONNX graph into ONNX Runtime's "QDQ" int8 form.
 *
 * - Each Conv's weight becomes an int8 initializer, symmetric per output channel (axis 0,
 *   zero point 0, values in [-63, 63] by default: see {@linkcode QdqOptions.weightBits})
 *   behind a DequantizeLinear; its bias an int32
 *   initializer with scale `x_scale * w_scale[c]` (what ONNX Runtime's QDQ Conv fusion
 *   requires to fold the node group into one QLinearConv).
 * - Each quantized activation (a Conv's input; a Conv's output or, when a Relu alone
 *   follows it, the Relu's output) gets a QuantizeLinear / DequantizeLinear pair, uint8
 *   asymmetric, with the range calibrated by `activation_ranges.ts`. Every consumer reads
 *   the DequantizeLinear's output, so ONNX Runtime sees `DQ -> Conv -> (Relu) -> Q`
 *   groups and fuses them into QLinearConv (the Relu folds into the Q, whose zero point
 *   is 0 for a range [0, max]).
 * - An AveragePool or Resize between two convolutions then sits between a DQ and a Q by
 *   itself: ONNX Runtime runs QLinearAveragePool, and a Resize whose output shares its
 *   input's scale and zero point (the pass makes it so) on uint8 values.
 *
 * Before that, {@linkcode prepareGraph} folds a per-channel normalisation after a Conv
 * (the teacher's `(t - mean) / std`) into the Conv. Everything else (the map arithmetic)
 * stays float32. The pass is generic over the node list: it does not depend on how the
 * graph was built.
 *
 * @example
 * ```ts
 * import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
 * import { resolveConfig } from "../model/config.ts";
 * import { syntheticModel } from "../model/synthetic.ts";
 * import { quantizableTensors, quantizeGraph } from "./qdq_graph.ts";
 *
 * const fp32 = buildEfficientAdGraph(syntheticModel(resolveConfig({ teacherOutChannels: 8 })));
 * const ranges = new Map(quantizableTensors(fp32).map((t) => [t, { min: -4, max: 4 }]));
 * const int8 = quantizeGraph(fp32, ranges);
 * ```
 *
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;
const T = onnx.TensorProto.DataType;

/** A calibrated activation range (float32 values). */
export interface Range {
  readonly min: number;
  readonly max: number;
}

/** Scale and zero point of a uint8 asymmetric quantization of a range. */
export interface Uint8Params {
  readonly scale: number;
  readonly zeroPoint: number;
}

/**
 * The uint8 parameters of a range: the range is widened to hold 0 (exactly representable),
 * `scale = (max - min) / 255`, `zeroPoint = round(-min / scale)`.
 *
 * @throws {RangeError} when the range is not finite or `min > max`.
 */
export function uint8Params(range: Range): Uint8Params {
  const { min, max } = range;
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`Cannot quantize the range [${min}, ${max}]: not a finite range`);
  }
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const span = hi - lo;
  const scale = Math.fround(span > 0 ? span / 255 : 1);
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** Int8 weights quantized per output channel (axis 0), symmetric. */
export interface ChannelWeights {
  readonly values: Int8Array;
  /** One scale per output channel: `max |w_c| / qmax` (1 for an all-zero channel). */
  readonly scales: Float32Array;
}

/**
 * Quantizes weights of shape `[C, ...]` per channel: `q = clamp(round(w / s_c), -qmax, qmax)`
 * with `qmax = 2^(bits - 1) - 1` (127 for 8 bits, 63 for 7).
 */
export function quantizeWeights(data: Float32Array, channels: number, bits = 8): ChannelWeights {
  const qmax = 2 ** (bits - 1) - 1;
  const per = data.length / channels;
  const values = new Int8Array(data.length);
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(data[i]!));
    const s = Math.fround(m > 0 ? m / qmax : 1);
    scales[c] = s;
    for (let i = c * per; i < (c + 1) * per; i++) {
      values[i] = Math.max(-qmax, Math.min(qmax, Math.round(data[i]! / s)));
    }
  }
  return { values, scales };
}

function decode(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** The float32 data of an initializer (raw or `float_data`). */
export function floatsOf(t: ITensor): Float32Array {
  if (t.dataType !== T.FLOAT) {
    throw new TypeError(`Cannot read initializer "${t.name}": not float32`);
  }
  if (t.rawData && t.rawData.length > 0) {
    // A copy: decoded bytes may be a (Node Buffer) view into the whole file.
    const copy = new Uint8Array(t.rawData);
    return new Float32Array(copy.buffer, 0, copy.length / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

/** Where each value is consumed: value name to the nodes (and input slots) reading it. */
function consumers(nodes: readonly INode[]): Map<string, INode[]> {
  const map = new Map<string, INode[]>();
  for (const n of nodes) {
    for (const i of n.input ?? []) {
      if (i === "") continue;
      const list = map.get(i) ?? [];
      if (!list.includes(n)) list.push(n);
      map.set(i, list);
    }
  }
  return map;
}

interface Plan {
  /** The activation tensors to quantize, in graph order. */
  readonly tensors: string[];
  /** Resize outputs that share their input's parameters: output to input. */
  readonly shared: Map<string, string>;
}

/** Options of {@linkcode quantizableTensors} and {@linkcode quantizeGraph}. */
export interface QdqOptions {
  /**
   * Bits of the int8 weights: 8 (values in [-127, 127]) or 7 ([-63, 63], "reduce range").
   * x86 CPUs without VNNI multiply uint8 by int8 with 16-bit saturating pair sums
   * (`vpmaddubsw`): with 8-bit weights a first layer's sums overflow and its output is
   * wrong; 7 bits cannot overflow. Default 7.
   */
  readonly weightBits?: 7 | 8;
  /** Convs whose weight's name starts with one of these stay float32 (`teacher.`). */
  readonly exclude?: readonly string[];
}

function excluded(n: INode, options: QdqOptions): boolean {
  const w = n.input?.[1] ?? "";
  return (options.exclude ?? []).some((p) => w.startsWith(p));
}

/**
 * Folds a per-channel affine normalisation after a Conv (`Div(Sub(conv, mean), std)` with
 * constant `[1, C, 1, 1]` mean and std, the teacher's feature normalisation) into the
 * Conv's weights and bias, so that its quantized output is in normalised units (an int8
 * step then costs every channel the same). Changes `model` in place.
 */
function foldAffine(model: onnxProto.onnx.ModelProto): void {
  const g = model.graph!;
  const nodes = g.node ?? [];
  const used = consumers(nodes);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? "", t]));
  const outputs = new Set((g.output ?? []).map((o) => o.name ?? ""));
  const removed = new Set<INode>();
  for (const conv of nodes) {
    if (conv.opType !== "Conv") continue;
    const y = conv.output?.[0] ?? "";
    const sub = used.get(y);
    if (sub?.length !== 1 || sub[0]!.opType !== "Sub" || sub[0]!.input?.[0] !== y) continue;
    const subOut = sub[0]!.output?.[0] ?? "";
    const div = used.get(subOut);
    if (div?.length !== 1 || div[0]!.opType !== "Div" || div[0]!.input?.[0] !== subOut) continue;
    if (outputs.has(y) || outputs.has(subOut)) continue;
    const mean = inits.get(sub[0]!.input?.[1] ?? "");
    const std = inits.get(div[0]!.input?.[1] ?? "");
    const w = inits.get(conv.input?.[1] ?? "");
    const b = inits.get(conv.input?.[2] ?? "");
    if (!mean || !std || !w || !b) continue;
    const channels = Number(w.dims?.[0]);
    const m = floatsOf(mean);
    const sd = floatsOf(std);
    if (m.length !== channels || sd.length !== channels) continue;
    const wf = floatsOf(w);
    const bf = floatsOf(b);
    const per = wf.length / channels;
    for (let c = 0; c < channels; c++) {
      for (let i = c * per; i < (c + 1) * per; i++) wf[i] = wf[i]! / sd[c]!;
      bf[c] = (bf[c]! - m[c]!) / sd[c]!;
    }
    // New initializers: the originals may be shared.
    const wName = `${conv.input![1]}_folded`;
    const bName = `${conv.input![2]}_folded`;
    g.initializer = [
      ...(g.initializer ?? []),
      { name: wName, dataType: T.FLOAT, dims: w.dims ?? [], rawData: bytes(wf) },
      { name: bName, dataType: T.FLOAT, dims: b.dims ?? [], rawData: bytes(bf) },
    ];
    conv.input = [conv.input![0]!, wName, bName];
    conv.output = [div[0]!.output?.[0] ?? ""];
    removed.add(sub[0]!);
    removed.add(div[0]!);
  }
  g.node = nodes.filter((n) => !removed.has(n));
  const read = new Set(g.node.flatMap((n) => n.input ?? []));
  g.initializer = (g.initializer ?? []).filter((t) => read.has(t.name ?? ""));
}

/**
 * The graph the pass quantizes: `graph` with the per-channel normalisations after Convs
 * folded into them. Calibrate activation ranges on this graph: its tensor names are the
 * ones {@linkcode quantizableTensors} lists. Its outputs equal `graph`'s (up to float
 * rounding).
 *
 * @throws {Error} when the bytes are not an ONNX model.
 */
export function prepareGraph(graph: Uint8Array): Uint8Array {
  const model = decode(graph);
  foldAffine(model);
  return onnx.ModelProto.encode(model).finish();
}

function plan(model: onnxProto.onnx.ModelProto, options: QdqOptions = {}): Plan {
  const nodes = model.graph?.node ?? [];
  const used = consumers(nodes);
  const outputs = new Set((model.graph?.output ?? []).map((o) => o.name ?? ""));
  const tensors: string[] = [];
  const shared = new Map<string, string>();
  const add = (t: string) => {
    if (t !== "" && !outputs.has(t) && !tensors.includes(t)) tensors.push(t);
  };
  for (const n of nodes) {
    if (n.opType !== "Conv" || excluded(n, options)) continue;
    add(n.input?.[0] ?? "");
    let y = n.output?.[0] ?? "";
    const next = used.get(y);
    if (next?.length === 1 && next[0]!.opType === "Relu") y = next[0]!.output?.[0] ?? y;
    add(y);
  }
  // A Resize between two quantized values reuses its input's scale and zero point: its
  // output stays within the input's range, and ONNX Runtime then drops the pair and
  // resizes uint8 values (with different scales its level-3 layout pass breaks the Resize).
  for (const n of nodes) {
    const [x = "", y = ""] = [n.input?.[0], n.output?.[0]];
    if (n.opType === "Resize" && tensors.includes(x) && tensors.includes(y)) shared.set(y, x);
  }
  return { tensors, shared };
}

/**
 * The activation tensors the pass would quantize in a graph, in graph order: the names
 * whose ranges calibration must provide (on {@linkcode prepareGraph}'s graph).
 *
 * @throws {Error} when the bytes are not an ONNX model.
 */
export function quantizableTensors(graph: Uint8Array, options: QdqOptions = {}): string[] {
  const model = decode(graph);
  foldAffine(model);
  const { tensors, shared } = plan(model, options);
  return tensors.filter((t) => !shared.has(t));
}

/**
 * Rewrites a float32 graph into QDQ int8 form (see the module doc), after
 * {@linkcode prepareGraph}'s folding. The graph's inputs and outputs are unchanged.
 *
 * @throws {RangeError} when `ranges` lacks a tensor of {@linkcode quantizableTensors} or a
 * range is not finite.
 * @throws {TypeError} when a Conv's weight or bias is not a float32 initializer.
 */
export function quantizeGraph(
  graph: Uint8Array,
  ranges: ReadonlyMap<string, Range>,
  options: QdqOptions = {},
): Uint8Array {
  const model = decode(graph);
  foldAffine(model);
  const g = model.graph!;
  const { tensors, shared } = plan(model, options);
  const params = new Map<string, Uint8Params>();
  for (const t of tensors) {
    const source = shared.get(t);
    if (source !== undefined) continue;
    const r = ranges.get(t);
    if (r === undefined) throw new RangeError(`Cannot quantize the graph: no range for "${t}"`);
    params.set(t, uint8Params(r));
  }
  for (const [t, source] of shared) {
    const p = params.get(source);
    if (p !== undefined) params.set(t, p);
    else tensors.splice(tensors.indexOf(t), 1);
  }

  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? "", t]));
  const newInits: ITensor[] = [];
  const scalar = (name: string, type: number, value: number): string => {
    const raw = type === T.FLOAT
      ? new Uint8Array(Float32Array.of(value).buffer)
      : Uint8Array.of(value);
    newInits.push({ name, dataType: type, dims: [], rawData: raw });
    return name;
  };
  const qParams = new Map<string, [string, string]>();
  for (const [t, p] of params) {
    qParams.set(t, [
      scalar(`${t}_scale`, T.FLOAT, p.scale),
      scalar(`${t}_zp`, T.UINT8, p.zeroPoint),
    ]);
  }

  // Q/DQ pairs: after the producer (or first, for a graph input); consumers read the DQ.
  const dqName = (t: string) => `${t}_dq`;
  const pairOf = (t: string): INode[] => {
    const [s, z] = qParams.get(t)!;
    return [
      { opType: "QuantizeLinear", name: `${t}_Q`, input: [t, s, z], output: [`${t}_q`] },
      { opType: "DequantizeLinear", name: `${t}_DQ`, input: [`${t}_q`, s, z], output: [dqName(t)] },
    ];
  };
  const quantized = new Set(tensors);
  const out: INode[] = [];
  const producers = new Set<string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producers.add(o);
  for (const t of tensors) if (!producers.has(t)) out.push(...pairOf(t));

  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((i) => quantized.has(i) ? dqName(i) : i);
    if (n.opType === "Conv" && !excluded(n, options)) {
      out.push(...convWeights(n, inits, qParams, newInits, options.weightBits ?? 7));
    }
    if (n.opType === "Resize" && quantized.has(n.output?.[0] ?? "")) out.push(...fullRankSizes(n));
    out.push(n);
    for (const o of n.output ?? []) if (quantized.has(o)) out.push(...pairOf(o));
  }
  g.node = out;
  g.initializer = [...(g.initializer ?? []), ...newInits];
  // Weights replaced by int8 ones are no longer read: drop them.
  const read = new Set(out.flatMap((n) => n.input ?? []));
  g.initializer = g.initializer.filter((t) => read.has(t.name ?? ""));
  return onnx.ModelProto.encode(model).finish();
}

/** Replaces a Conv's weight and bias by int8 / int32 initializers behind DQ nodes. */
function convWeights(
  n: INode,
  inits: ReadonlyMap<string, ITensor>,
  qParams: ReadonlyMap<string, [string, string]>,
  newInits: ITensor[],
  bits: number,
): INode[] {
  const [xDq, wName, bName] = n.input ?? [];
  if (!/_dq$/.test(xDq ?? "")) return [];
  const w = inits.get(wName ?? "");
  if (w === undefined) {
    throw new TypeError(`Cannot quantize Conv "${n.name}": its weight is not an initializer`);
  }
  const x = (xDq ?? "").replace(/_dq$/, "");
  const xq = qParams.get(x);
  if (xq === undefined) {
    throw new RangeError(`Cannot quantize Conv "${n.name}": input not quantized`);
  }
  const xScale = newInits.find((t) => t.name === xq[0])!;
  const xs = new Float32Array(new Uint8Array(xScale.rawData!).buffer)[0]!;
  const dims = (w.dims ?? []).map(Number);
  const channels = dims[0]!;
  const { values, scales } = quantizeWeights(floatsOf(w), channels, bits);
  const nodes: INode[] = [];
  const wq = `${wName}_int8`;
  newInits.push(
    { name: wq, dataType: T.INT8, dims, rawData: new Uint8Array(values.buffer) },
    { name: `${wName}_scale`, dataType: T.FLOAT, dims: [channels], rawData: bytes(scales) },
    { name: `${wName}_zp`, dataType: T.INT8, dims: [channels], rawData: new Uint8Array(channels) },
  );
  nodes.push({
    opType: "DequantizeLinear",
    name: `${wName}_DQ`,
    input: [wq, `${wName}_scale`, `${wName}_zp`],
    output: [`${wName}_dq`],
    attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
  });
  const inputs = [xDq ?? "", `${wName}_dq`];
  if (bName !== undefined && bName !== "") {
    const b = inits.get(bName);
    if (b === undefined) {
      throw new TypeError(`Cannot quantize Conv "${n.name}": its bias is not an initializer`);
    }
    const bias = floatsOf(b);
    const bScales = new Float32Array(channels);
    const bq = new Int32Array(channels);
    for (let c = 0; c < channels; c++) {
      bScales[c] = Math.fround(xs * scales[c]!);
      bq[c] = Math.round(bias[c]! / bScales[c]!);
    }
    newInits.push(
      { name: `${bName}_int32`, dataType: T.INT32, dims: [channels], rawData: bytes(bq) },
      { name: `${bName}_scale`, dataType: T.FLOAT, dims: [channels], rawData: bytes(bScales) },
      {
        name: `${bName}_zp`,
        dataType: T.INT32,
        dims: [channels],
        rawData: new Uint8Array(channels * 4),
      },
    );
    nodes.push({
      opType: "DequantizeLinear",
      name: `${bName}_DQ`,
      input: [`${bName}_int32`, `${bName}_scale`, `${bName}_zp`],
      output: [`${bName}_dq`],
      attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    });
    inputs.push(`${bName}_dq`);
  }
  n.input = inputs;
  return nodes;
}

/**
 * Rewrites a Resize with an `axes` attribute and 2-D `sizes` into one with full-rank sizes
 * `concat(shape(x)[0:2], sizes)`: ONNX Runtime's NHWC layout pass (level "all", around
 * QLinearConv) loses an `axes` Resize's sizes ("Number of elements of input 'sizes' (0)").
 */
function fullRankSizes(n: INode): INode[] {
  const axes = (n.attribute ?? []).find((a) => a.name === "axes");
  const [x = "", roi = "", scales = "", sizes = ""] = n.input ?? [];
  if (axes === undefined || sizes === "" || scales !== "") return [];
  const listed = (axes.ints ?? []).map(Number);
  if (listed.length !== 2 || listed[0] !== 2 || listed[1] !== 3) return [];
  const INT = onnx.AttributeProto.AttributeType.INT;
  const name = n.name ?? x;
  const leading = `${name}_leading_dims`;
  const full = `${name}_full_sizes`;
  n.input = [x, roi, scales, full];
  n.attribute = (n.attribute ?? []).filter((a) => a.name !== "axes");
  return [
    {
      opType: "Shape",
      name: leading,
      input: [x],
      output: [leading],
      attribute: [{ name: "end", type: INT, i: 2 }],
    },
    {
      opType: "Concat",
      name: full,
      input: [leading, sizes],
      output: [full],
      attribute: [{ name: "axis", type: INT, i: 0 }],
    },
  ];
}

function bytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
