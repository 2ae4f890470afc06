/**
 * Builds the whole EfficientAD inference as one ONNX graph: input normalisation, teacher,
 * student, autoencoder, both maps, map padding and resize, quantile normalisation,
 * combination and score. Weights become initializers, so the graph is self-contained.
 *
 * Graph interface (opset 18):
 * - input `input`: `batch x 3 x H x W` float32, RGB in [0, 1], H x W the model's size;
 * - outputs `anomaly_map` (`batch x 1 x H x W`), `pred_score` (`batch x 1`, the raw score:
 *   the map's maximum), `map_st` and `map_ae` (`batch x 1 x H x W`, after padding and
 *   resize, before quantile normalisation), and with `debug` also `ae_out`.
 *
 * @module
 */
import { tensor } from "../../core/tensor.ts";
import { type Layer, networkOutputSize, networks } from "../../model/architecture.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../../model/config.ts";
import type { EfficientAdModel } from "../../model/model.ts";
import { hasMeanStd, quantilesOf, validateStateDict } from "../../model/state_dict.ts";
import { GraphBuilder } from "./graph_builder.ts";

/** The default-domain opset the graph uses. */
export const OPSET = 18;

/** Options of {@linkcode buildEfficientAdGraph}. */
export interface GraphOptions {
  /** Also output the autoencoder's raw output as `ae_out`. Default false. */
  readonly debug?: boolean;
  /**
   * `fp16`: the three networks and the squared differences in half precision (weights
   * stored as float16), the maps' padding, resize, normalisation and score in float32; the
   * graph's inputs and outputs stay float32. For GPUs with `shader-f16` (ONNX Runtime's CPU
   * provider lacks float16 kernels). Default `fp32`.
   */
  readonly precision?: "fp32" | "fp16";
}

/** Names of the graph's outputs, in order. */
export function graphOutputs(debug = false): string[] {
  return ["anomaly_map", "pred_score", "map_st", "map_ae", ...(debug ? ["ae_out"] : [])];
}

/**
 * Encodes a model as an ONNX graph for ONNX Runtime.
 *
 * @throws {ModelFormatError} when the weights do not match the model's config.
 */
export function buildEfficientAdGraph(
  model: EfficientAdModel,
  options: GraphOptions = {},
): Uint8Array {
  const { config, stateDict } = model;
  validateStateDict(stateDict, config, model.provenance.version);
  const g = new GraphBuilder();
  const half = options.precision === "fp16";
  const weight = (key: string) => {
    const t = stateDict.get(key);
    if (t === undefined) throw new RangeError(`Cannot build graph: missing weight "${key}"`);
    return half ? g.halves(key, t) : g.floats(key, t);
  };
  const toFloat = (v: string) => (half ? g.node("Cast", [v], { to: 1 }) : v);
  const [H, W] = config.imageSize;
  const c = config.teacherOutChannels;
  const x = g.input("input", ["batch", 3, H, W]);

  // Every network normalises its input the same way: compute it once.
  const mean = g.floats("imagenet_mean", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_MEAN)));
  const std = g.floats("imagenet_std", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_STD)));
  const xf = g.node("Div", [g.node("Sub", [x, mean]), std]);
  const xn = half ? g.node("Cast", [xf], { to: 10 }) : xf;

  const run = (prefix: string, layers: readonly Layer[], input: string): string => {
    let v = input;
    for (const l of layers) {
      if (l.op === "conv") {
        const p = l.pad;
        v = g.node("Conv", [
          v,
          weight(`${prefix}.${l.name}.weight`),
          weight(`${prefix}.${l.name}.bias`),
        ], {
          kernel_shape: [l.kernel, l.kernel],
          strides: [l.stride, l.stride],
          pads: [p, p, p, p],
        });
        if (l.relu) v = g.node("Relu", [v]);
      } else if (l.op === "avgpool") {
        const p = l.pad;
        v = g.node("AveragePool", [v], {
          kernel_shape: [l.kernel, l.kernel],
          strides: [l.stride, l.stride],
          pads: [p, p, p, p],
          count_include_pad: 1,
        });
      } else {
        v = resize(g, v, l.size);
      }
    }
    return v;
  };

  const nets = networks(config);
  let t = run("teacher", nets.teacher, xn);
  if (hasMeanStd(stateDict)) {
    t = g.node("Div", [g.node("Sub", [t, weight("mean_std.mean")]), weight("mean_std.std")]);
  }
  const s = run("student", nets.student, xn);
  const [sSt, sAe] = split(g, s, c);
  const a = run("ae", nets.ae, xn);

  const sqMean = (u: string, v: string) => {
    const d = g.node("Sub", [u, v]);
    return toFloat(
      g.node("ReduceMean", [g.node("Mul", [d, d]), g.ints(g.fresh("axis_c"), [1])], {
        keepdims: 1,
      }),
    );
  };
  let maps = g.node("Concat", [sqMean(t, sSt), sqMean(a, sAe)], { axis: 1 });
  if (config.padMaps) {
    maps = g.node("Pad", [maps, g.ints("pad_maps", [0, 0, 4, 4, 0, 0, 4, 4])], {
      mode: "constant",
    });
  }
  maps = resize(g, maps, [H, W]);
  const [mapSt, mapAe] = split(g, maps, 1, ["map_st", "map_ae"]);

  const q = quantilesOf(stateDict);
  let combined: string;
  if (q) {
    const qa = g.floats("quantile_a", tensor([1, 2, 1, 1], Float32Array.of(q.qaSt, q.qaAe)));
    const qd = g.floats(
      "quantile_span",
      tensor([1, 2, 1, 1], Float32Array.of(q.qbSt - q.qaSt, q.qbAe - q.qaAe)),
    );
    const tenth = g.floats("one_tenth", tensor([], Float32Array.of(0.1)));
    const normed = g.node("Div", [g.node("Mul", [tenth, g.node("Sub", [maps, qa])]), qd]);
    combined = combine(g, normed);
  } else {
    combined = combine(g, maps);
  }
  g.node("Identity", [combined], {}, "anomaly_map");
  g.node("ReduceMax", [combined, g.ints("axes_hw", [2, 3])], { keepdims: 0 }, "pred_score");

  const [h, w] = networkOutputSize(nets.ae, [H, W]);
  g.output("anomaly_map", ["batch", 1, H, W]);
  g.output("pred_score", ["batch", 1]);
  g.output(mapSt, ["batch", 1, H, W]);
  g.output(mapAe, ["batch", 1, H, W]);
  if (options.debug) {
    g.node("Identity", [toFloat(a)], {}, "ae_out");
    g.output("ae_out", ["batch", c, h, w]);
  }
  return g.encode({
    opset: OPSET,
    producer: "efficientad-edge",
    docString: `EfficientAD ${config.size.toUpperCase()} ${H}x${W} ${model.provenance.version}`,
  });
}

/** 0.5 * map_st + 0.5 * map_ae over a `batch x 2 x H x W` value. */
function combine(g: GraphBuilder, maps: string): string {
  const half = g.floats(g.fresh("half"), tensor([], Float32Array.of(0.5)));
  const [st, ae] = split(g, maps, 1);
  return g.node("Add", [g.node("Mul", [half, st]), g.node("Mul", [half, ae])]);
}

/** Splits a value in two along the channel axis, `first` channels first. */
function split(
  g: GraphBuilder,
  v: string,
  first: number,
  names?: [string, string],
): [string, string] {
  const a = names?.[0] ?? g.fresh("split");
  const b = names?.[1] ?? g.fresh("split");
  const starts = (n: number) => g.ints(g.fresh("starts"), [n]);
  const axis = g.ints(g.fresh("axis"), [1]);
  // Slice rather than Split: the second half's size need not be known here.
  g.node("Slice", [v, starts(0), starts(first), axis], {}, a);
  g.node("Slice", [v, starts(first), starts(1 << 30), axis], {}, b);
  return [a, b];
}

/** Bilinear resize of the two spatial axes, PyTorch `align_corners=False` semantics. */
function resize(g: GraphBuilder, v: string, size: readonly [number, number]): string {
  const sizes = g.ints(g.fresh("sizes"), [size[0], size[1]]);
  return g.node("Resize", [v, "", "", sizes], {
    mode: "linear",
    coordinate_transformation_mode: "pytorch_half_pixel",
    axes: [2, 3],
  });
}
