import * as tf from "@tensorflow/tfjs-core";
import { assertAlmostEquals, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import { disposeEfficientAdParams, efficientAdParams } from "../../infer/tfjs/networks.ts";
import { AUGMENT_KINDS, augmentImage } from "../augment.ts";
import { conv2dWithGrad } from "./conv_grad.ts";
import { ensureGradients } from "./gradients.ts";
import { disposeTrainableModel, trainableModel } from "./losses.ts";
import { Adam, disposeGradients, lossesAndGradients } from "./step.ts";
import {
  FIXTURE_CONFIG,
  HAS_TRAIN_FIXTURE,
  imageToHwc,
  readLossesJson,
  readModelDict,
  readTrainNpy,
} from "../_test_utils.ts";

Deno.test("Adam follows torch.optim.Adam with L2 weight decay over two steps", async () => {
  await selectTfjsBackend();
  const p = tf.variable(tf.tensor1d([1, -2, 0.5]));
  const vars = new Map([["p", p]]);
  const adam = new Adam({ lr: 0.1, weightDecay: 0.01 });
  const gs = [[0.5, -1, 0], [0.2, 0.3, -0.4]];
  // Reference in float64, PyTorch's formulas.
  const ref = [1, -2, 0.5];
  const m = [0, 0, 0];
  const v = [0, 0, 0];
  gs.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < 3; i++) {
      const gi = g[i]! + 0.01 * ref[i]!;
      m[i] = 0.9 * m[i]! + 0.1 * gi;
      v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8;
      ref[i] = ref[i]! - (0.1 / (1 - 0.9 ** t)) * m[i]! / denom;
    }
    const grad = tf.tensor1d(g);
    adam.step(vars, new Map([["p", grad]]));
    grad.dispose();
  });
  assertEquals(adam.steps, 2);
  const got = p.dataSync();
  ref.forEach((r, i) => assertAlmostEquals(got[i]!, r, 1e-6));
  const stray = tf.scalar(1);
  assertThrows(() => adam.step(vars, new Map([["q", stray]])), RangeError, "q");
  stray.dispose();
  adam.dispose();
  p.dispose();
});

Deno.test({
  name: "losses, gradients and one Adam step match anomalib (efficientad-s-train)",
  ignore: !HAS_TRAIN_FIXTURE,
  async fn() {
    await selectTfjsBackend();
    await ensureGradients();
    const json = await readLossesJson();
    const params = efficientAdParams(FIXTURE_CONFIG, await readModelDict());
    const xv = imageToHwc(await readTrainNpy("x.npy"));
    const image = tf.tensor4d(xv, [1, 256, 256, 3]);
    const penalty = tf.tensor4d(imageToHwc(await readTrainNpy("penalty.npy")), [1, 256, 256, 3]);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    try {
      for (const kind of AUGMENT_KINDS) {
        const expected = json[kind];
        const model = trainableModel(params);
        const augmented = tf.tensor4d(
          augmentImage(xv, { kind, factor: expected.factor }),
          [1, 256, 256, 3],
        );
        const adam = new Adam({ lr: 1e-4, weightDecay: 1e-5 });
        try {
          const t0 = performance.now();
          const { losses, grads } = lossesAndGradients(model, { image, penalty, augmented }, {
            conv2d: conv2dWithGrad,
          });
          const seconds = (performance.now() - t0) / 1000;
          const report: Record<string, number> = {
            loss_st: rel(losses.lossSt, expected.loss_st),
            loss_ae: rel(losses.lossAe, expected.loss_ae),
            loss_stae: rel(losses.lossStae, expected.loss_stae),
            loss: rel(losses.loss, expected.loss),
          };
          for (const [name, norm] of Object.entries(expected.grad_norms)) {
            const g = grads.get(name);
            if (g === undefined) throw new Error(`no gradient for ${name}`);
            report[`|grad ${name}|`] = rel(tf.tidy(() => tf.norm(g).dataSync()[0]!), norm);
          }
          const names = Object.keys(expected.delta_abs_sum);
          const before = new Map(names.map((n) => [n, model.variables.get(n)!.dataSync()]));
          adam.step(model.variables, grads);
          disposeGradients(grads);
          let signMismatches = 0;
          let signElements = 0;
          for (const name of names) {
            const after = model.variables.get(name)!.dataSync();
            const b = before.get(name)!;
            const delta = new Float32Array(after.length);
            let abs = 0;
            for (let i = 0; i < after.length; i++) {
              delta[i] = after[i]! - b[i]!;
              abs += Math.abs(delta[i]!);
            }
            report[`sum|delta ${name}|`] = rel(abs, expected.delta_abs_sum[name]!);
            const file = `delta_${kind}_${name}.npy`;
            if (name === "student.conv4.bias" || name === "ae.decoder.deconv8.bias") {
              const ref = await readTrainNpy(file);
              assertEquals(ref.data.length, delta.length, file);
              for (let i = 0; i < delta.length; i++) {
                signElements++;
                if (Math.sign(delta[i]!) !== Math.sign(ref.data[i]!)) signMismatches++;
              }
            }
          }
          console.log(
            `${kind}: step ${seconds.toFixed(1)} s; relative errors ${
              Object.entries(report).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(", ")
            }; delta signs ${signElements - signMismatches}/${signElements}`,
          );
          assertEquals(signMismatches, 0, `${kind}: delta sign mismatches`);
          for (const [k, v] of Object.entries(report)) {
            assertEquals(v <= 1e-3, true, `${kind} ${k}: relative error ${v}`);
          }
        } finally {
          adam.dispose();
          augmented.dispose();
          disposeTrainableModel(model);
        }
      }
    } finally {
      image.dispose();
      penalty.dispose();
      disposeEfficientAdParams(params);
    }
  },
});
