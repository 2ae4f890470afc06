/**
 * The frozen teacher as its own ONNX graph for training: input normalisation, the teacher
 * PDN and, when the state dict holds them, the mean/std channel normalisation. Weights are
 * initializers (the teacher never changes during training), so ONNX Runtime can fold and
 * pre-pack them.
 *
 * Graph interface (opset 18): input `input` (`batch x 3 x H x W`, RGB in [0, 1]); output
 * `teacher` (`batch x C x h x w`).
 *
 * @module
 */
import { tensor } from "../../core/tensor.ts";
import { networkOutputSize, networks } from "../../model/architecture.ts";
import { type EfficientAdConfig, IMAGENET_MEAN, IMAGENET_STD } from "../../model/config.ts";
import { hasMeanStd, type StateDict } from "../../model/state_dict.ts";
import { GraphBuilder } from "../../infer/onnx/graph_builder.ts";
import { TRAIN_OPSET } from "./train_step_graph.ts";

/**
 * Encodes the teacher (normalised by `mean_std` when set) as an ONNX graph.
 *
 * @throws {RangeError} when a teacher weight is missing from the state dict.
 */
export function buildTeacherGraph(config: EfficientAdConfig, stateDict: StateDict): Uint8Array {
  const g = new GraphBuilder();
  const weight = (key: string) => {
    const t = stateDict.get(key);
    if (t === undefined) throw new RangeError(`Cannot build teacher graph: missing "${key}"`);
    return g.floats(key, t);
  };
  const [H, W] = config.imageSize;
  const c = config.teacherOutChannels;
  const layers = networks(config).teacher;
  const x = g.input("input", ["batch", 3, H, W]);
  const mean = g.floats("imagenet_mean", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_MEAN)));
  const std = g.floats("imagenet_std", tensor([1, 3, 1, 1], Float32Array.from(IMAGENET_STD)));
  let v = g.node("Div", [g.node("Sub", [x, mean]), std]);
  for (const l of layers) {
    const p = l.op === "resize" ? 0 : l.pad;
    if (l.op === "conv") {
      v = g.node(
        "Conv",
        [v, weight(`teacher.${l.name}.weight`), weight(`teacher.${l.name}.bias`)],
        {
          kernel_shape: [l.kernel, l.kernel],
          strides: [l.stride, l.stride],
          pads: [p, p, p, p],
        },
      );
      if (l.relu) v = g.node("Relu", [v]);
    } else if (l.op === "avgpool") {
      v = g.node("AveragePool", [v], {
        kernel_shape: [2, 2],
        strides: [2, 2],
        pads: [p, p, p, p],
        count_include_pad: 1,
      });
    }
  }
  if (hasMeanStd(stateDict)) {
    v = g.node("Div", [g.node("Sub", [v, weight("mean_std.mean")]), weight("mean_std.std")]);
  }
  g.node("Identity", [v], {}, "teacher");
  const [h, w] = networkOutputSize(layers, [H, W]);
  g.output("teacher", ["batch", c, h, w]);
  return g.encode({ opset: TRAIN_OPSET, producer: "efficientad-edge", docString: "teacher" });
}
