import { assertEquals } from "../../../tests/assert.ts";
import { readNpy } from "../../core/npy.ts";
import { item, maxAbsDiff, type Tensor, valueRange } from "../../core/tensor.ts";
import type { StateDict } from "../../model/state_dict.ts";
import { tfjsTrainStepFactory } from "./train_step.ts";
import {
  FIXTURE_CONFIG,
  HAS_TRAIN_FIXTURE,
  MODEL_DIR,
  readLossesJson,
  readModelDict,
  readTrainNpy,
} from "../_test_utils.ts";

function pick(dict: StateDict, prefixes: string[]): StateDict {
  return new Map([...dict].filter(([k]) => prefixes.some((p) => k.startsWith(`${p}.`))));
}

function batchOf(t: Tensor): Tensor {
  return { shape: [1, ...t.shape], data: t.data };
}

Deno.test({
  name: "tfjsTrainStepFactory() steps, maps and snapshots like anomalib (efficientad-s-train)",
  ignore: !HAS_TRAIN_FIXTURE,
  async fn() {
    const dict = await readModelDict();
    const json = await readLossesJson();
    const factory = tfjsTrainStepFactory({ aeDropout: 0 });
    const init = {
      config: FIXTURE_CONFIG,
      teacher: pick(dict, ["teacher"]),
      params: pick(dict, ["student", "ae"]),
      seed: 0,
    };
    await using step = await factory(init);
    const input = await readNpy(`${MODEL_DIR}input.npy`);
    const first = batchOf(item(input, 0));
    const features = await step.teacherFeatures(first);
    assertEquals(features.shape, [1, 384, 56, 56]);
    step.setTeacherNorm({
      mean: dict.get("mean_std.mean")!.data,
      std: dict.get("mean_std.std")!.data,
    });
    const maps = await step.maps(first);
    for (const [got, file] of [[maps.st, "map_st_raw.npy"], [maps.ae, "map_ae_raw.npy"]] as const) {
      const expected = batchOf(item(await readNpy(`${MODEL_DIR}${file}`), 0));
      assertEquals(got.shape, [1, 1, 256, 256]);
      const rel = maxAbsDiff(got, expected) / valueRange(expected);
      assertEquals(rel < 1e-4, true, `${file}: ${rel}`);
    }
    const before = await step.snapshot();
    const losses = await step.step({
      step: 0,
      lr: 1e-4,
      image: await readTrainNpy("x.npy"),
      penalty: await readTrainNpy("penalty.npy"),
      augmentation: { kind: "brightness", factor: json.brightness.factor },
    });
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    assertEquals(rel(losses.loss, json.brightness.loss) < 1e-3, true, `loss ${losses.loss}`);
    const after = await step.snapshot();
    assertEquals(after.optimizer.steps, 1);
    assertEquals(after.random, 1);
    for (const name of ["student.conv4.bias", "ae.decoder.deconv8.bias"]) {
      const ref = await readTrainNpy(`delta_brightness_${name}.npy`);
      const a = after.params.get(name)!.data;
      const b = before.params.get(name)!.data;
      let mismatches = 0;
      for (let i = 0; i < a.length; i++) {
        if (Math.sign(a[i]! - b[i]!) !== Math.sign(ref.data[i]!)) mismatches++;
      }
      assertEquals(mismatches, 0, name);
    }
    // PyTorch layout out, and back in on resume.
    assertEquals(after.params.get("student.conv1.weight")!.shape, [128, 3, 4, 4]);
    assertEquals(after.optimizer.m.get("student.conv1.weight")!.shape, [128, 3, 4, 4]);
    await using resumed = await factory({
      ...init,
      params: after.params,
      optimizer: after.optimizer,
      random: after.random!,
    });
    const again = await resumed.snapshot();
    for (const [k, t] of after.params) assertEquals(again.params.get(k)!.data, t.data, k);
    for (const [k, t] of after.optimizer.v) {
      assertEquals(again.optimizer.v.get(k)!.data, t.data, k);
    }
    assertEquals(again.optimizer.steps, 1);
    assertEquals(again.random, 1);
  },
});
