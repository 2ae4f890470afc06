/**
 * A small builder for ONNX graphs over the `onnx-proto` message classes: nodes, float32
 * and int64 initializers, inputs and outputs, encoded to the bytes that ONNX Runtime
 * loads.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import type { Tensor } from "../../core/tensor.ts";

const { onnx } = onnxProto;

/** An attribute value: numbers are ints unless listed in `floats`, strings are strings. */
export type AttributeValue = number | string | number[];

/** One dimension of a graph input or output: a fixed size or a symbolic name. */
export type Dim = number | string;

/** Accumulates an ONNX graph. Names are unique strings chosen by the caller or `fresh()`. */
export class GraphBuilder {
  #nodes: onnxProto.onnx.INodeProto[] = [];
  #initializers: onnxProto.onnx.ITensorProto[] = [];
  #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  #counter = 0;
  #floatAttributes = new Set(["alpha", "beta", "epsilon", "value_float"]);

  /** A new unique value name with a readable stem. */
  fresh(stem: string): string {
    return `${stem}_${this.#counter++}`;
  }

  /** Adds a node and returns its (single) output name. */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    output?: string,
  ): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.#nodes.push({
      opType,
      input: [...inputs],
      output: [out],
      name: `${opType}_${this.#nodes.length}`,
      attribute: Object.entries(attributes).map(([name, v]) => this.#attribute(name, v)),
    });
    return out;
  }

  /** Adds a float32 initializer (a constant weight) and returns its name. */
  floats(name: string, t: Tensor): string {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    this.#initializers.push({
      name,
      dims: [...t.shape],
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: bytes.slice(),
    });
    return name;
  }

  /** Adds a float16 initializer, rounded from float32 data, and returns its name. */
  halves(name: string, t: Tensor): string {
    const half = Float16Array.from(t.data);
    this.#initializers.push({
      name,
      dims: [...t.shape],
      dataType: onnx.TensorProto.DataType.FLOAT16,
      rawData: new Uint8Array(half.buffer),
    });
    return name;
  }

  /** Adds a 1-D int64 initializer (sizes, axes, pads) and returns its name. */
  ints(name: string, values: readonly number[]): string {
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.#initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(raw.buffer),
    });
    return name;
  }

  /** Declares a float32 graph input. */
  input(name: string, dims: readonly Dim[]): string {
    this.#inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares a float32 graph output (an existing value name). */
  output(name: string, dims: readonly Dim[]): void {
    this.#outputs.push(valueInfo(name, dims));
  }

  /** Encodes the model; `opset` is the default-domain opset version. */
  encode(options: { opset: number; producer: string; docString?: string }): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: options.producer,
      producerVersion: "1",
      docString: options.docString ?? "",
      opsetImport: [{ domain: "", version: options.opset }],
      graph: {
        name: "efficientad",
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  #attribute(name: string, v: AttributeValue): onnxProto.onnx.IAttributeProto {
    const T = onnx.AttributeProto.AttributeType;
    if (typeof v === "string") return { name, type: T.STRING, s: new TextEncoder().encode(v) };
    if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
    if (this.#floatAttributes.has(name)) return { name, type: T.FLOAT, f: v };
    return { name, type: T.INT, i: v };
  }
}

function valueInfo(name: string, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  };
}
