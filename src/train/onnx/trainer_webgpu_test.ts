import { assertOk } from "../../../tests/assert.ts";
import { HAS_WEBGPU, randomImage } from "../../../tests/support/webgpu.ts";
import { createLogger } from "../../core/log.ts";
import { resolveConfig } from "../../model/config.ts";
import type { StateDict } from "../../model/state_dict.ts";
import { syntheticStateDict } from "../../model/synthetic.ts";
import { OnnxTrainer, type OnnxTrainerLosses } from "./trainer.ts";

/** The largest |a - b| over a tensor pair, over the largest |b| of the tensor. */
function worst(a: StateDict, b: StateDict): { name: string; rel: number } {
  let out = { name: "", rel: 0 };
  for (const [name, t] of b) {
    const u = a.get(name)?.data;
    assertOk(u && u.length === t.data.length, name);
    let diff = 0;
    let max = 0;
    for (let i = 0; i < u.length; i++) {
      diff = Math.max(diff, Math.abs(u[i]! - t.data[i]!));
      max = Math.max(max, Math.abs(t.data[i]!));
    }
    const rel = diff / (max || 1);
    if (rel > out.rel) out = { name, rel };
  }
  return out;
}

/**
 * The largest |a - b| of the weights, in units of `lr`, over the weights whose gradient
 * (Adam's m) is at least `floor` of its tensor's largest; how many weights are below; and
 * how many of all moved differently by more than 1e-3 x lr.
 * Adam's first step moves every weight by about lr x sign(gradient): where a gradient is
 * within rounding of zero its sign, and so the step, is a coin toss on either device.
 */
function worstWeight(
  a: StateDict,
  b: StateDict,
  m: StateDict,
  floor: number,
): { name: string; rel: number; below: number; total: number; moved: number } {
  let out = { name: "", rel: 0, below: 0, total: 0, moved: 0 };
  for (const [name, t] of b) {
    const u = a.get(name)!.data;
    const g = m.get(name)!.data;
    let max = 0;
    for (const v of g) max = Math.max(max, Math.abs(v));
    for (let i = 0; i < u.length; i++) {
      out.total++;
      if (Math.abs(u[i]! - t.data[i]!) > 1e-3 * LR) out.moved++;
      if (Math.abs(g[i]!) < floor * max) {
        out.below++;
        continue;
      }
      const rel = Math.abs(u[i]! - t.data[i]!) / LR;
      if (rel > out.rel) out = { ...out, name, rel };
    }
  }
  return out;
}

const LR = 1e-4;

Deno.test({
  name: "OnnxTrainer on webgpu takes the CPU's training step (losses, gradients, weights)",
  ignore: !HAS_WEBGPU,
  async fn() {
    const config = resolveConfig({ size: "s", teacherOutChannels: 64, padding: true });
    const sd = syntheticStateDict(config, 0);
    const x = randomImage(256, 256, 11);
    const images = {
      x,
      penalty: randomImage(256, 256, 12),
      augmented: { shape: x.shape, data: x.data.map((v) => Math.fround(0.9) * v) },
    };
    const run = async (gpu: boolean) => {
      const lines: string[] = [];
      await using trainer = await OnnxTrainer.create({
        config,
        stateDict: sd,
        dropout: 0,
        ...(gpu ? { executionProviders: ["webgpu"] as const } : {}),
        logger: createLogger({ sink: (l) => lines.push(l) }),
      });
      assertOk(trainer.provider === (gpu ? "webgpu" : "cpu"), lines.join("\n"));
      const losses = await trainer.trainStep(images, LR);
      return { losses, params: trainer.parameters(), m: trainer.adamState().m };
    };
    const cpu = await run(false);
    const gpu = await run(true);
    for (const k of Object.keys(cpu.losses) as (keyof OnnxTrainerLosses)[]) {
      const rel = Math.abs(gpu.losses[k] - cpu.losses[k]) / Math.abs(cpu.losses[k]);
      console.log(`loss ${k}: ${cpu.losses[k]} vs ${gpu.losses[k]} (${rel.toExponential(1)})`);
      assertOk(rel <= 1e-4, `loss ${k} differs by ${rel.toExponential(2)} relative`);
    }
    // Adam's first moment after one step is 0.1 x the gradient: compared per tensor,
    // relative to that tensor's largest. (This caught onnxruntime-web's WebGPU Gemm going
    // wrong over a reduction of 67081, the first student convolution's filter gradient at
    // 256x256 with padding: see MAX_GEMM_REDUCTION in backward_graph.ts.)
    const m = worst(gpu.m, cpu.m);
    // Measured on llvmpipe: 7.5e-5 x lr; the 95 of 2.56 M weights that moved differently
    // (by up to 2 x lr: a flipped sign) all have a gradient under 1e-4 of the range, the
    // gradients' own bound above.
    const w = worstWeight(gpu.params, cpu.params, cpu.m, 1e-4);
    console.log(`gradient (Adam m): ${m.rel.toExponential(1)} of the tensor's range (${m.name})`);
    console.log(
      `weights: ${w.rel.toExponential(1)} x lr (${w.name}); ${w.below} of ${w.total} ` +
        `weights with a gradient under 1e-4 of their tensor's range left out; ${w.moved} ` +
        `weights moved differently by over 1e-3 x lr`,
    );
    assertOk(m.rel <= 1e-4, `Adam m of ${m.name} differs by ${m.rel.toExponential(2)}`);
    assertOk(w.rel <= 1e-3, `weight ${w.name} differs by ${w.rel.toExponential(2)} x lr`);
  },
});
