import { assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { tensor } from "../core/tensor.ts";
import { buildEfficientAdGraph } from "../infer/onnx/efficientad_graph.ts";
import { resolveConfig } from "../model/config.ts";
import { syntheticModel } from "../model/synthetic.ts";
import { graphQuantiles, withQuantiles } from "./graph_quantiles.ts";

const model = syntheticModel(resolveConfig({ teacherOutChannels: 8 }));

Deno.test("graphQuantiles() is undefined for a graph without normalisation", () => {
  const g = buildEfficientAdGraph(model);
  assertEquals(graphQuantiles(g), undefined);
  assertThrows(
    () => withQuantiles(g, { qaSt: 0, qbSt: 1, qaAe: 0, qbAe: 1 }),
    RangeError,
    "no quantile normalisation",
  );
});

Deno.test("withQuantiles() replaces the graph's quantiles", () => {
  const dict = new Map(model.stateDict);
  for (const [k, v] of [["qa_st", 1], ["qb_st", 2], ["qa_ae", 3], ["qb_ae", 5]] as const) {
    dict.set(`quantiles.${k}`, tensor([], Float32Array.of(v)));
  }
  const g = buildEfficientAdGraph({ ...model, stateDict: dict });
  assertEquals(graphQuantiles(g), { qaSt: 1, qbSt: 2, qaAe: 3, qbAe: 5 });
  const q = graphQuantiles(withQuantiles(g, { qaSt: 0.25, qbSt: 0.75, qaAe: 0.5, qbAe: 2 }))!;
  assertAlmostEquals(q.qaSt, 0.25, 1e-7);
  assertAlmostEquals(q.qbSt, 0.75, 1e-7);
  assertAlmostEquals(q.qaAe, 0.5, 1e-7);
  assertAlmostEquals(q.qbAe, 2, 1e-7);
});
