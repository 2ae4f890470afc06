/**
 * The settings that fix an EfficientAD model's architecture and post-processing, as in
 * anomalib's `EfficientAdModel` (see `../shared/SPEC-efficientad.md`).
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";

/** PDN size: `s` (small) or `m` (medium). */
export type ModelSize = "s" | "m";

/** Everything that fixes the networks' shapes and the map post-processing. */
export interface EfficientAdConfig {
  /** PDN size of teacher and student. */
  readonly size: ModelSize;
  /** Channels of the teacher's output (the student has twice as many). Default 384. */
  readonly teacherOutChannels: number;
  /** anomalib's `padding`: convolutions and pools pad when true. Default false. */
  readonly padding: boolean;
  /** anomalib's `pad_maps`: zero-pad the maps by 4 before resizing. Default true. */
  readonly padMaps: boolean;
  /** Input height and width in pixels. Default [256, 256]. */
  readonly imageSize: readonly [number, number];
}

/** anomalib's defaults: size S, 384 channels, padding off, pad_maps on, 256x256. */
export const DEFAULT_CONFIG: EfficientAdConfig = {
  size: "s",
  teacherOutChannels: 384,
  padding: false,
  padMaps: true,
  imageSize: [256, 256],
};

/** ImageNet per-channel mean that every network subtracts from its RGB input. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
/** ImageNet per-channel std that every network divides its RGB input by. */
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/**
 * Fills defaults and checks that the networks can run at the image size.
 *
 * @throws {RangeError} when the image is too small for the autoencoder (it needs at
 * least 256 pixels per side: its bottleneck is an 8x8 convolution over a 1/32 scale map),
 * or when a setting is out of range.
 */
export function resolveConfig(partial: Partial<EfficientAdConfig> = {}): EfficientAdConfig {
  const config = { ...DEFAULT_CONFIG, ...partial };
  const [h, w] = config.imageSize;
  if (config.size !== "s" && config.size !== "m") {
    throw new RangeError(`Cannot use model size "${config.size}": expected "s" or "m"`);
  }
  assertPositiveInteger(
    config.teacherOutChannels,
    "teacher_out_channels",
    "Cannot use model config",
  );
  for (const [name, v] of [["height", h], ["width", w]] as const) {
    if (!Number.isInteger(v) || v < 256) {
      throw new RangeError(
        `Cannot use image ${name} ${v}: EfficientAD's autoencoder needs an integer of at least 256`,
      );
    }
  }
  return { ...config, imageSize: [h, w] };
}

/** A config as files store it (`model.json`, training checkpoints): snake_case keys. */
export interface ConfigJson {
  size: ModelSize;
  teacher_out_channels: number;
  padding: boolean;
  pad_maps: boolean;
  image_size: [number, number];
}

/** The stored (snake_case) form of a config. */
export function configToJson(config: EfficientAdConfig): ConfigJson {
  return {
    size: config.size,
    teacher_out_channels: config.teacherOutChannels,
    padding: config.padding,
    pad_maps: config.padMaps,
    image_size: [config.imageSize[0], config.imageSize[1]],
  };
}

/**
 * Reads the stored form of a config back, checking it as {@linkcode resolveConfig} does.
 *
 * @throws {RangeError} when a setting is out of range.
 */
export function configFromJson(json: Readonly<ConfigJson>): EfficientAdConfig {
  return resolveConfig({
    size: json.size,
    teacherOutChannels: json.teacher_out_channels,
    padding: json.padding,
    padMaps: json.pad_maps,
    imageSize: json.image_size,
  });
}
