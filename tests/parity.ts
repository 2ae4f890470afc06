/**
 * Helpers for parity tests against reference tensors: the anomalib fixtures in
 * `../shared/fixtures` (absent on a user's clone: those tests skip) and the project's own
 * fixtures in `tests/fixtures/efficientad/<case>` (synthetic weights, made by
 * `tools/fixtures/make_fixtures.py` from the SPEC).
 *
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { readNpy } from "../src/core/npy.ts";
import { maxAbsDiff, type Tensor, valueRange } from "../src/core/tensor.ts";
import { resolveConfig } from "../src/model/config.ts";
import type { EfficientAdModel } from "../src/model/model.ts";
import { syntheticStateDict } from "../src/model/synthetic.ts";

/** The project root. */
export const ROOT = fromFileUrl(new URL("../", import.meta.url));
/** `../shared/fixtures/efficientad-s` relative to the project root. */
export const SHARED_S = fromFileUrl(
  new URL("../../shared/fixtures/efficientad-s/", import.meta.url),
);
/** Whether the shared anomalib fixtures are present (absent on a user's clone). */
export const HAS_SHARED = (() => {
  try {
    return Deno.statSync(`${SHARED_S}model.pth`).isFile;
  } catch {
    return false;
  }
})();
if (!HAS_SHARED) {
  console.warn(
    "../shared/fixtures is absent: anomalib parity tests are skipped " +
      "(the project's own fixtures in tests/fixtures still run)",
  );
}

/** anomalib's pretrained-teacher file of the shared fixtures (`teacher fetch` / `--teacher`). */
export const SHARED_TEACHER = `${SHARED_S}teacher.pth`;
/** Whether {@linkcode SHARED_TEACHER} is present (absent on a user's clone). */
export const HAS_SHARED_TEACHER = (() => {
  try {
    return Deno.statSync(SHARED_TEACHER).isFile;
  } catch {
    console.log(`skipped: the tests that need ${SHARED_TEACHER} (it is absent)`);
    return false;
  }
})();

/** The project's own fixture cases. */
export const OWN_CASES = ["m", "s-padding", "s-nopadmaps", "s-rect"] as const;

/** Path of an own fixture case folder. */
export function ownCaseDir(name: string): string {
  return fromFileUrl(new URL(`fixtures/efficientad/${name}/`, import.meta.url));
}

/** A fixture case: the model to run, its input and the expected outputs. */
export interface FixtureCase {
  readonly model: EfficientAdModel;
  readonly input: Tensor;
  readonly expected: {
    anomalyMap: Tensor;
    predScore: Tensor;
    mapSt: Tensor;
    mapAe: Tensor;
  };
}

interface CaseMeta {
  size: "s" | "m";
  teacher_out_channels: number;
  padding: boolean;
  pad_maps: boolean;
  image_size: [number, number];
  seed: number;
  quantiles: { qa_st: number; qb_st: number; qa_ae: number; qb_ae: number };
}

/** Loads an own fixture case: synthetic weights plus the quantiles of its meta.json. */
export async function loadOwnCase(name: string): Promise<FixtureCase> {
  const dir = ownCaseDir(name);
  const meta = JSON.parse(await Deno.readTextFile(`${dir}meta.json`)) as CaseMeta;
  const config = resolveConfig({
    size: meta.size,
    teacherOutChannels: meta.teacher_out_channels,
    padding: meta.padding,
    padMaps: meta.pad_maps,
    imageSize: meta.image_size,
  });
  const stateDict = syntheticStateDict(config, meta.seed);
  for (const [k, v] of Object.entries(meta.quantiles)) {
    stateDict.set(`quantiles.${k}`, { shape: [], data: Float32Array.of(v) });
  }
  const u8 = await readNpy(`${dir}input_u8.npy`);
  const input = { shape: u8.shape, data: u8.data.map((v) => Math.fround(v / 255)) };
  return {
    model: {
      config,
      stateDict,
      provenance: { version: `fixture-${name}`, source: "synthetic" },
      resize: "bilinear",
    },
    input,
    expected: {
      anomalyMap: await readNpy(`${dir}anomaly_map.npy`),
      predScore: await readNpy(`${dir}pred_score.npy`),
      mapSt: await readNpy(`${dir}map_st_raw.npy`),
      mapAe: await readNpy(`${dir}map_ae_raw.npy`),
    },
  };
}

/**
 * Asserts `max |actual - expected| <= tolerance * range(expected)` and returns the
 * relative error for reporting. Scores use the range of the matching map (`rangeOf`).
 */
export function assertClose(
  label: string,
  actual: Tensor | undefined,
  expected: Tensor,
  options: { tolerance?: number; rangeOf?: Tensor } = {},
): number {
  if (actual === undefined) throw new Error(`${label}: missing from the engine's output`);
  if (actual.data.length !== expected.data.length) {
    throw new Error(
      `${label}: shape [${actual.shape.join(", ")}] does not match [${expected.shape.join(", ")}]`,
    );
  }
  const range = valueRange(options.rangeOf ?? expected) || 1;
  const rel = maxAbsDiff(actual, expected) / range;
  const tol = options.tolerance ?? 1e-4;
  if (!(rel <= tol)) {
    throw new Error(`${label}: max abs diff is ${rel.toExponential(2)} of the range, over ${tol}`);
  }
  return rel;
}
