/**
 * anomalib's EfficientAD state dict: names, shapes, validation and what can be inferred
 * from it.
 *
 * @module
 */
import { ModelFormatError } from "../core/errors.ts";
import { formatShape, sameShape, type Tensor } from "../core/tensor.ts";
import type { EfficientAdConfig, ModelSize } from "./config.ts";
import { expectedStateDict } from "./architecture.ts";

/** Tensors by anomalib's state-dict key (`teacher.conv1.weight`, `quantiles.qa_st`, ...). */
export type StateDict = Map<string, Tensor>;

/** Map-normalisation quantiles; absent when the model was never calibrated. */
export interface Quantiles {
  readonly qaSt: number;
  readonly qbSt: number;
  readonly qaAe: number;
  readonly qbAe: number;
}

/**
 * Checks that a state dict holds every key of the architecture with the right shape.
 * Extra keys are ignored. Quantiles may be missing (they are then treated as unset).
 * With `only`, just the keys starting with that prefix are checked (`teacher.`).
 *
 * @throws {ModelFormatError} naming `path`, the first missing keys and wrong shapes.
 */
export function validateStateDict(
  dict: StateDict,
  config: EfficientAdConfig,
  path: string,
  options: { only?: string } = {},
): void {
  const problems: string[] = [];
  for (const [key, shape] of expectedStateDict(config)) {
    if (options.only !== undefined && !key.startsWith(options.only)) continue;
    const t = dict.get(key);
    if (t === undefined) {
      if (key.startsWith("quantiles.") || key.startsWith("mean_std.")) continue;
      problems.push(`missing key "${key}"`);
    } else if (!sameShape(t.shape, shape) && !(shape.length === 0 && t.data.length === 1)) {
      problems.push(
        `key "${key}" has shape ${formatShape(t.shape)}, expected ${formatShape(shape)}`,
      );
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join("; ");
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : "";
    throw new ModelFormatError(
      path,
      `state dict does not match EfficientAD size ${config.size.toUpperCase()} with ` +
        `teacher_out_channels ${config.teacherOutChannels}: ${shown}${more}`,
    );
  }
}

/**
 * Reads what a state dict says about its own architecture: size (S when the teacher has
 * no `conv5`, M otherwise) and teacher output channels. Padding and pad_maps leave no
 * trace in the weights and must come from metadata or flags.
 *
 * @throws {ModelFormatError} when the dict holds no teacher.
 */
export function inferArchitecture(
  dict: StateDict,
  path: string,
  prefix = "teacher.",
): { size: ModelSize; teacherOutChannels: number } {
  const conv1 = dict.get(`${prefix}conv1.weight`);
  if (conv1 === undefined) {
    throw new ModelFormatError(
      path,
      `no "${prefix}conv1.weight": this is not an EfficientAD model`,
    );
  }
  const size: ModelSize = dict.has(`${prefix}conv5.weight`) ? "m" : "s";
  const last = dict.get(`${prefix}${size === "s" ? "conv4" : "conv6"}.weight`);
  const c = last?.shape[0];
  if (c === undefined) {
    throw new ModelFormatError(path, `no "${prefix}${size === "s" ? "conv4" : "conv6"}.weight"`);
  }
  return { size, teacherOutChannels: c };
}

/** The quantiles of a state dict, or undefined when any is missing or all are zero. */
export function quantilesOf(dict: StateDict): Quantiles | undefined {
  const get = (k: string) => dict.get(`quantiles.${k}`)?.data[0];
  const [qaSt, qbSt, qaAe, qbAe] = [get("qa_st"), get("qb_st"), get("qa_ae"), get("qb_ae")];
  if (qaSt === undefined || qbSt === undefined || qaAe === undefined || qbAe === undefined) {
    return undefined;
  }
  if (qaSt === 0 && qbSt === 0 && qaAe === 0 && qbAe === 0) return undefined;
  return { qaSt, qbSt, qaAe, qbAe };
}

/**
 * Whether the teacher-output normalisation (`mean_std`) is set: anomalib skips it while
 * mean and std are all zero.
 */
export function hasMeanStd(dict: StateDict): boolean {
  const mean = dict.get("mean_std.mean");
  const std = dict.get("mean_std.std");
  if (mean === undefined || std === undefined) return false;
  return mean.data.some((v) => v !== 0) || std.data.some((v) => v !== 0);
}
