import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, sizeOf, type Tensor, tensor } from "../../core/tensor.ts";
import {
  conv,
  type ConvLayer,
  type Layer,
  networkOutputSize,
  pdnLayers,
} from "../../model/architecture.ts";
import { uniformStream } from "../../model/synthetic.ts";
import type { StateDict } from "../../model/state_dict.ts";
import { assertEquals, assertOk as assert, assertThrows } from "../../../tests/assert.ts";
import { selectTfjsBackend } from "./backend.ts";
import {
  disposeNetworkParams,
  forwardLayers,
  forwardNetwork,
  networkParams,
  resizeBilinear,
} from "./networks.ts";

function random(shape: readonly number[], key: string, scale = 1): Tensor {
  const next = uniformStream(key, 1);
  const data = new Float32Array(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = (2 * next() - 1) * scale;
  return tensor(shape, data);
}

// ---- Direct NCHW references with PyTorch's semantics -------------------------------------

function refConv(x: Tensor, w: Tensor, b: Tensor, layer: ConvLayer): Tensor {
  const [n, ci, h, wd] = x.shape as [number, number, number, number];
  const { outChannels: co, kernel: k, stride: s, pad: p } = layer;
  const oh = Math.floor((h + 2 * p - k) / s) + 1;
  const ow = Math.floor((wd + 2 * p - k) / s) + 1;
  const out = new Float32Array(n * co * oh * ow);
  for (let b0 = 0; b0 < n; b0++) {
    for (let o = 0; o < co; o++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let acc = b.data[o]!;
          for (let i = 0; i < ci; i++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = y * s - p + ky;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = xx * s - p + kx;
                if (ix < 0 || ix >= wd) continue;
                acc += x.data[((b0 * ci + i) * h + iy) * wd + ix]! *
                  w.data[((o * ci + i) * k + ky) * k + kx]!;
              }
            }
          }
          out[((b0 * co + o) * oh + y) * ow + xx] = layer.relu ? Math.max(0, acc) : acc;
        }
      }
    }
  }
  return tensor([n, co, oh, ow], out);
}

function refAvgPool(x: Tensor, pad: number): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h + 2 * pad - 2) / 2) + 1;
  const ow = Math.floor((w + 2 * pad - 2) / 2) + 1;
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let acc = 0;
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) {
            const iy = 2 * y - pad + dy;
            const ix = 2 * xx - pad + dx;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) acc += x.data[(p * h + iy) * w + ix]!;
          }
        }
        out[(p * oh + y) * ow + xx] = acc / 4; // padded zeros count in the divisor
      }
    }
  }
  return tensor([n, c, oh, ow], out);
}

/**
 * PyTorch's `upsample_bilinear2d` with `align_corners=False`, NCHW, with its float32
 * arithmetic (`Math.fround` at each step, as its CPU kernel computes in float).
 */
function refResize(x: Tensor, size: readonly [number, number]): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [oh, ow] = size;
  const f = Math.fround;
  const out = new Float32Array(n * c * oh * ow);
  const coords = (o: number, inSize: number, outSize: number) => {
    const scale = f(inSize / outSize);
    const src = Math.max(0, f(f(scale * f(o + 0.5)) - 0.5));
    const i0 = Math.floor(src);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = f(src - i0);
    return [i0, i1, f(1 - l1), l1] as const;
  };
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      const [y0, y1, ly0, ly1] = coords(y, h, oh);
      for (let xx = 0; xx < ow; xx++) {
        const [x0, x1, lx0, lx1] = coords(xx, w, ow);
        const v = (yy: number, xi: number) => x.data[(p * h + yy) * w + xi]!;
        out[(p * oh + y) * ow + xx] = ly0 * (lx0 * v(y0, x0) + lx1 * v(y0, x1)) +
          ly1 * (lx0 * v(y1, x0) + lx1 * v(y1, x1));
      }
    }
  }
  return tensor([n, c, oh, ow], out);
}

function refForward(layers: readonly Layer[], dict: StateDict, x: Tensor): Tensor {
  let y = x;
  for (const layer of layers) {
    if (layer.op === "conv") {
      y = refConv(y, dict.get(`${layer.name}.weight`)!, dict.get(`${layer.name}.bias`)!, layer);
    } else if (layer.op === "avgpool") y = refAvgPool(y, layer.pad);
    else y = refResize(y, layer.size);
  }
  return y;
}

// ---- Helpers to move tensors between NCHW and tfjs's NHWC --------------------------------

function toNhwc(t: Tensor): tf.Tensor4D {
  const [n, c, h, w] = t.shape as [number, number, number, number];
  return tf.tidy(() => tf.transpose(tf.tensor4d(t.data, [n, c, h, w]), [0, 2, 3, 1]));
}

function fromNhwc(t: tf.Tensor4D): Tensor {
  const [n, h, w, c] = t.shape;
  const nchw = tf.transpose(t, [0, 3, 1, 2]);
  const data = nchw.dataSync() as Float32Array;
  nchw.dispose();
  return tensor([n, c, h, w], data);
}

/** Runs `fn` on the wasm and the cpu backends, then reselects the default backend. */
async function onEachBackend(fn: (backend: string) => void): Promise<void> {
  try {
    for (const kind of ["wasm", "cpu"] as const) {
      await selectTfjsBackend({ candidates: [kind] });
      fn(kind);
    }
  } finally {
    await selectTfjsBackend();
  }
}

/** fromNhwc(), then disposes the input. */
function take(t: tf.Tensor4D): Tensor {
  try {
    return fromNhwc(t);
  } finally {
    t.dispose();
  }
}

const SMALL_NET: Layer[] = [
  conv("a", 3, 4, 4, { stride: 2, pad: 1 }),
  { op: "avgpool", kernel: 2, stride: 2, pad: 1 },
  conv("b", 4, 5, 3, { pad: 2 }),
  { op: "avgpool", kernel: 2, stride: 2, pad: 0 },
  { op: "resize", size: [7, 4] },
  conv("c", 5, 6, 4, { pad: 3 }),
  { op: "resize", size: [3, 5] },
  conv("d", 6, 2, 2, { relu: false }),
];

function smallDict(): StateDict {
  const dict: StateDict = new Map();
  for (const l of SMALL_NET) {
    if (l.op !== "conv") continue;
    const fanIn = l.inChannels * l.kernel * l.kernel;
    dict.set(
      `${l.name}.weight`,
      random([l.outChannels, l.inChannels, l.kernel, l.kernel], l.name, Math.sqrt(6 / fanIn)),
    );
    dict.set(`${l.name}.bias`, random([l.outChannels], `${l.name}.bias`, 0.1));
  }
  return dict;
}

Deno.test("resizeBilinear() matches PyTorch's align_corners=False", async () => {
  const cases: [number, number, number, number][] = [
    [5, 7, 3, 4], // downscale
    [3, 3, 8, 5], // upscale
    [127, 127, 56, 56], // the autoencoder's last resize
    [64, 64, 256, 256], // a map's resize
    [4, 6, 4, 6], // identity
  ];
  await onEachBackend((backend) => {
    for (const [h, w, oh, ow] of cases) {
      const x = random([2, 3, h, w], `resize${h}x${w}`);
      const got = take(tf.tidy(() => resizeBilinear(toNhwc(x), [oh, ow])));
      const diff = maxAbsDiff(got, refResize(x, [oh, ow]));
      // Source coordinates are float32 in every implementation (PyTorch's too) and may
      // round differently by an ulp (8e-6 near index 100); neighbours differ by up to 2.
      assert(diff < 1e-4, `${backend} ${h}x${w} -> ${oh}x${ow}: max abs diff ${diff}`);
    }
  });
});

Deno.test("forwardLayers() matches direct convolution, pooling and resize", async () => {
  const dict = smallDict();
  const x = random([2, 3, 21, 18], "input");
  const expected = refForward(SMALL_NET, dict, x);
  await onEachBackend((backend) => {
    const params = networkParams(dict, SMALL_NET);
    const before = tf.memory().numTensors;
    try {
      const fused = take(tf.tidy(() => forwardLayers({ layers: SMALL_NET, params }, toNhwc(x))));
      const unfused = take(tf.tidy(() =>
        forwardLayers({ layers: SMALL_NET, params }, toNhwc(x), {
          conv2d: (input, weight, { stride, pad }) =>
            tf.conv2d(input, weight, stride, pad === 0 ? "valid" : pad),
        })
      ));
      assert(tf.memory().numTensors === before, "forwardLayers() under tidy leaked tensors");
      for (const [name, got] of [["fused", fused], ["unfused", unfused]] as const) {
        assertEquals(got.shape, expected.shape);
        const diff = maxAbsDiff(got, expected);
        assert(diff < 1e-5, `${backend} ${name}: max abs diff ${diff}`);
      }
    } finally {
      disposeNetworkParams(params);
    }
  });
});

Deno.test("forwardLayers() calls afterConv on every convolution's output", async () => {
  await selectTfjsBackend();
  const dict = smallDict();
  const params = networkParams(dict, SMALL_NET);
  const seen: string[] = [];
  try {
    tf.tidy(() =>
      forwardLayers({ layers: SMALL_NET, params }, toNhwc(random([1, 3, 21, 18], "input")), {
        afterConv: (y, layer) => {
          seen.push(layer.name);
          return tf.mul(y, 0);
        },
      })
    );
  } finally {
    disposeNetworkParams(params);
  }
  assert(seen.join() === "a,b,c,d", `afterConv saw ${seen.join()}`);
});

Deno.test("forwardNetwork() gives the PDN's output size with and without padding", async () => {
  await selectTfjsBackend();
  for (const padding of [false, true]) {
    const layers = pdnLayers("s", 8, padding).map((l) =>
      l.op === "conv" && l.name !== "conv1"
        ? { ...l, inChannels: 8, outChannels: 8 }
        : l.op === "conv"
        ? { ...l, outChannels: 8 }
        : l
    );
    const dict = new Map<string, Tensor>();
    for (const l of layers) {
      if (l.op !== "conv") continue;
      dict.set(`${l.name}.weight`, random([8, l.inChannels, l.kernel, l.kernel], l.name, 0.1));
      dict.set(`${l.name}.bias`, random([8], `${l.name}.b`, 0.1));
    }
    const params = networkParams(dict, layers);
    try {
      const shape = tf.tidy(() =>
        forwardNetwork({ layers, params }, tf.zeros([1, 64, 48, 3]) as tf.Tensor4D).shape
      );
      const [h, w] = networkOutputSize(layers, [64, 48]);
      assert(
        shape.join() === [1, h, w, 8].join(),
        `padding ${padding}: got ${shape}, expected 1,${h},${w},8`,
      );
    } finally {
      disposeNetworkParams(params);
    }
  }
});

Deno.test("networkParams() rejects missing and misshapen weights", async () => {
  await selectTfjsBackend();
  const before = tf.memory().numTensors;
  const dict = smallDict();
  dict.delete("c.bias");
  const missing = assertThrows(() => networkParams(dict, SMALL_NET), RangeError);
  assertEquals(missing.message, `Cannot convert weights: the state dict has no "c.bias"`);
  const wrong = smallDict();
  wrong.set("b.weight", random([5, 4, 2, 2], "wrong"));
  assertThrows(
    () => networkParams(wrong, SMALL_NET),
    RangeError,
    `"b" has shapes [5, 4, 2, 2] and [5], expected [5, 4, 3, 3] and [5]`,
  );
  assertEquals(tf.memory().numTensors, before, "a failed networkParams() leaked tensors");
});
