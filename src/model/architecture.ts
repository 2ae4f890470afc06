/**
 * EfficientAD's networks as data: the layer lists that both inference engines (ONNX
 * graph builder, TensorFlow.js) and the weight loaders read, so that the architecture is
 * written down once.
 *
 * @module
 */
import type { EfficientAdConfig, ModelSize } from "./config.ts";

/** A 2-D convolution with bias, square kernel, symmetric zero padding. */
export interface ConvLayer {
  readonly op: "conv";
  /** State-dict name without the network prefix, e.g. `conv1` or `encoder.enconv1`. */
  readonly name: string;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
  /** Whether a ReLU follows. */
  readonly relu: boolean;
}

/** Average pooling, kernel 2 stride 2; padded zeros count in the divisor (PyTorch default). */
export interface PoolLayer {
  readonly op: "avgpool";
  readonly kernel: 2;
  readonly stride: 2;
  readonly pad: number;
}

/** Bilinear resize (align_corners false, no antialiasing) to a fixed size. */
export interface ResizeLayer {
  readonly op: "resize";
  readonly size: readonly [number, number];
}

/** One step of a network. Dropout is left out: it is identity at inference. */
export type Layer = ConvLayer | PoolLayer | ResizeLayer;

/** Makes a conv layer: stride 1, no padding and a ReLU unless the options say otherwise. */
export function conv(
  name: string,
  inChannels: number,
  outChannels: number,
  kernel: number,
  options: { pad?: number; stride?: number; relu?: boolean } = {},
): ConvLayer {
  return {
    op: "conv",
    name,
    inChannels,
    outChannels,
    kernel,
    stride: options.stride ?? 1,
    pad: options.pad ?? 0,
    relu: options.relu ?? true,
  };
}

function pool(pad: number): PoolLayer {
  return { op: "avgpool", kernel: 2, stride: 2, pad };
}

/**
 * The patch description network (teacher or student) for a size.
 *
 * @param outChannels 384 for anomalib's teacher, 768 for its student (twice the teacher's).
 */
export function pdnLayers(size: ModelSize, outChannels: number, padding: boolean): Layer[] {
  const p = padding ? 1 : 0;
  if (size === "s") {
    return [
      conv("conv1", 3, 128, 4, { pad: 3 * p }),
      pool(p),
      conv("conv2", 128, 256, 4, { pad: 3 * p }),
      pool(p),
      conv("conv3", 256, 256, 3, { pad: p }),
      conv("conv4", 256, outChannels, 4, { relu: false }),
    ];
  }
  return [
    conv("conv1", 3, 256, 4, { pad: 3 * p }),
    pool(p),
    conv("conv2", 256, 512, 4, { pad: 3 * p }),
    pool(p),
    conv("conv3", 512, 512, 1),
    conv("conv4", 512, 512, 3, { pad: p }),
    conv("conv5", 512, outChannels, 4),
    conv("conv6", outChannels, outChannels, 1, { relu: false }),
  ];
}

/** The autoencoder's layers for an image size (the decoder's resizes depend on it). */
export function autoencoderLayers(config: EfficientAdConfig, outChannels = 384): Layer[] {
  const [h, w] = config.imageSize;
  const enc = (name: string, i: number, o: number) =>
    conv(`encoder.${name}`, i, o, 4, { stride: 2, pad: 1 });
  const dec = (name: string) => conv(`decoder.${name}`, 64, 64, 4, { pad: 2 });
  const resize = (rh: number, rw: number): ResizeLayer => ({ op: "resize", size: [rh, rw] });
  const last: [number, number] = config.padding
    ? [Math.ceil(h / 4), Math.ceil(w / 4)]
    : [Math.ceil(h / 4) - 8, Math.ceil(w / 4) - 8];
  const fl = Math.floor;
  return [
    enc("enconv1", 3, 32),
    enc("enconv2", 32, 32),
    enc("enconv3", 32, 64),
    enc("enconv4", 64, 64),
    enc("enconv5", 64, 64),
    conv("encoder.enconv6", 64, 64, 8, { relu: false }),
    resize(fl(h / 64) - 1, fl(w / 64) - 1),
    dec("deconv1"),
    resize(fl(h / 32), fl(w / 32)),
    dec("deconv2"),
    resize(fl(h / 16) - 1, fl(w / 16) - 1),
    dec("deconv3"),
    resize(fl(h / 8), fl(w / 8)),
    dec("deconv4"),
    resize(fl(h / 4) - 1, fl(w / 4) - 1),
    dec("deconv5"),
    resize(fl(h / 2) - 1, fl(w / 2) - 1),
    dec("deconv6"),
    resize(last[0], last[1]),
    conv("decoder.deconv7", 64, 64, 3, { pad: 1 }),
    conv("decoder.deconv8", 64, outChannels, 3, { pad: 1, relu: false }),
  ];
}

/** The three networks of a model with their state-dict prefixes. */
export interface Networks {
  readonly teacher: Layer[];
  readonly student: Layer[];
  readonly ae: Layer[];
}

/** Builds the layer lists of all three networks for a config. */
export function networks(config: EfficientAdConfig): Networks {
  const c = config.teacherOutChannels;
  return {
    teacher: pdnLayers(config.size, c, config.padding),
    student: pdnLayers(config.size, 2 * c, config.padding),
    ae: autoencoderLayers(config, c),
  };
}

/** Output height and width of a layer applied to an input of the given size. */
export function outputSize(layer: Layer, size: readonly [number, number]): [number, number] {
  if (layer.op === "resize") return [layer.size[0], layer.size[1]];
  const f = (n: number) => Math.floor((n + 2 * layer.pad - layer.kernel) / layer.stride) + 1;
  return [f(size[0]), f(size[1])];
}

/** Spatial size of a network's output for an input of the given size. */
export function networkOutputSize(
  layers: readonly Layer[],
  size: readonly [number, number],
): [number, number] {
  let s: [number, number] = [size[0], size[1]];
  for (const layer of layers) s = outputSize(layer, s);
  return s;
}

/**
 * Every state-dict key of a full anomalib EfficientAD model with its expected shape.
 * Quantiles are scalars (shape `[]`).
 */
export function expectedStateDict(config: EfficientAdConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const { teacher, student, ae } = networks(config);
  for (
    const [prefix, layers] of [["teacher", teacher], ["student", student], ["ae", ae]] as const
  ) {
    for (const l of layers) {
      if (l.op !== "conv") continue;
      out.set(`${prefix}.${l.name}.weight`, [l.outChannels, l.inChannels, l.kernel, l.kernel]);
      out.set(`${prefix}.${l.name}.bias`, [l.outChannels]);
    }
  }
  const c = config.teacherOutChannels;
  out.set("mean_std.mean", [1, c, 1, 1]);
  out.set("mean_std.std", [1, c, 1, 1]);
  for (const q of ["qa_st", "qb_st", "qa_ae", "qb_ae"]) out.set(`quantiles.${q}`, []);
  return out;
}
