import * as ort from "onnxruntime-node";
import { tensor } from "../../core/tensor.ts";
import type { ConvLayer } from "../../model/architecture.ts";
import { GraphBuilder } from "../../infer/onnx/graph_builder.ts";
import { assertAlmostEquals, assertEquals } from "../../../tests/assert.ts";
import { backward, bilinearMatrix, forward } from "./backward_graph.ts";

Deno.test("bilinearMatrix follows PyTorch's align_corners=False weights", () => {
  assertEquals(Array.from(bilinearMatrix(2, 4)), [1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1]);
  // Downscaling 4 -> 2: sources 0.5 and 2.5.
  assertEquals(Array.from(bilinearMatrix(4, 2)), [0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5]);
});

Deno.test("backward() gives a convolution's weight and bias gradients", async () => {
  // One 3x3 convolution, 1 -> 1 channel, padding 1, on a 4x4 input; the loss is
  // sum(y * gy) for a given gy, so dW[a, b] = sum_p gy[p] x_pad[p + (a, b)], db = sum gy.
  const conv: ConvLayer = {
    op: "conv",
    name: "c",
    inChannels: 1,
    outChannels: 1,
    kernel: 3,
    stride: 1,
    pad: 1,
    relu: false,
  };
  const x = Float32Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
  const gy = Float32Array.from({ length: 16 }, (_, i) => ((i * 7) % 3) - 1);
  const g = new GraphBuilder();
  g.input("x", [1, 1, 4, 4]);
  g.input("n.c.weight", [1, 1, 3, 3]);
  g.input("n.c.bias", [1]);
  const f = forward(g, "n", [conv], "x", [4, 4]);
  g.node("Identity", [f.output], {}, "y");
  g.output("y", [1, 1, 4, 4]);
  const gradOut = g.floats("gy", tensor([1, 1, 4, 4], gy));
  const grads = backward(g, f.tape, gradOut);
  assertEquals([...grads.keys()].sort(), ["n.c.bias", "n.c.weight"]);
  g.node("Identity", [grads.get("n.c.weight")!], {}, "dw");
  g.node("Identity", [grads.get("n.c.bias")!], {}, "db");
  g.output("dw", [1, 1, 3, 3]);
  g.output("db", [1]);
  const session = await ort.InferenceSession.create(g.encode({ opset: 18, producer: "test" }));
  try {
    const out = await session.run({
      x: new ort.Tensor("float32", x, [1, 1, 4, 4]),
      "n.c.weight": new ort.Tensor("float32", new Float32Array(9).fill(0.5), [1, 1, 3, 3]),
      "n.c.bias": new ort.Tensor("float32", Float32Array.of(0.1), [1]),
    });
    const dw = out.dw!.data as Float32Array;
    const at = (r: number, c: number) => (r < 0 || c < 0 || r > 3 || c > 3 ? 0 : x[r * 4 + c]!);
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) {
        let want = 0;
        for (let r = 0; r < 4; r++) {
          for (let c = 0; c < 4; c++) want += gy[r * 4 + c]! * at(r + a - 1, c + b - 1);
        }
        assertAlmostEquals(dw[a * 3 + b]!, want, 1e-5);
      }
    }
    assertAlmostEquals((out.db!.data as Float32Array)[0]!, gy.reduce((s, v) => s + v, 0), 1e-5);
  } finally {
    await session.release();
  }
});
