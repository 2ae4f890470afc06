/**
 * Reads and replaces the quantile-normalisation constants (`quantile_a`, `quantile_span`)
 * of an EfficientAD graph built by `buildEfficientAdGraph`.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import type { Quantiles } from "../model/state_dict.ts";
import { floatsOf } from "./qdq_graph.ts";

const { onnx } = onnxProto;

/**
 * The quantiles a graph normalises its maps with, or undefined when it has none.
 *
 * @throws {Error} when the bytes are not an ONNX model.
 */
export function graphQuantiles(graph: Uint8Array): Quantiles | undefined {
  const inits = onnx.ModelProto.decode(graph).graph?.initializer ?? [];
  const a = inits.find((t) => t.name === "quantile_a");
  const span = inits.find((t) => t.name === "quantile_span");
  if (a === undefined || span === undefined) return undefined;
  const [qaSt = 0, qaAe = 0] = floatsOf(a);
  const [dSt = 0, dAe = 0] = floatsOf(span);
  return { qaSt, qbSt: Math.fround(qaSt + dSt), qaAe, qbAe: Math.fround(qaAe + dAe) };
}

/**
 * A copy of the graph whose quantile constants are `q`.
 *
 * @throws {RangeError} when the graph has no quantile normalisation (build it from a model
 * with quantiles).
 */
export function withQuantiles(graph: Uint8Array, q: Quantiles): Uint8Array {
  const model = onnx.ModelProto.decode(graph);
  const inits = model.graph?.initializer ?? [];
  const a = inits.find((t) => t.name === "quantile_a");
  const span = inits.find((t) => t.name === "quantile_span");
  if (a === undefined || span === undefined) {
    throw new RangeError("Cannot set the graph's quantiles: it has no quantile normalisation");
  }
  const raw = (v: Float32Array) => new Uint8Array(v.buffer);
  a.rawData = raw(Float32Array.of(q.qaSt, q.qaAe));
  a.floatData = [];
  span.rawData = raw(Float32Array.of(q.qbSt - q.qaSt, q.qbAe - q.qaAe));
  span.floatData = [];
  return onnx.ModelProto.encode(model).finish();
}
