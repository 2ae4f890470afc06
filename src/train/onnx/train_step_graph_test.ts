import * as ort from "onnxruntime-node";
import { readNpy } from "../../core/npy.ts";
import { item, type Tensor } from "../../core/tensor.ts";
import { resolveConfig } from "../../model/config.ts";
import { syntheticStateDict } from "../../model/synthetic.ts";
import { readTorchCheckpoint } from "../../model/torch_checkpoint.ts";
import { createSession, type RuntimeTensor } from "../../infer/onnx/session.ts";
import { assertAlmostEquals, assertEquals, assertOk } from "../../../tests/assert.ts";
import { HAS_SHARED, loadOwnCase, ROOT, SHARED_S } from "../../../tests/parity.ts";
import { buildEfficientAdGraph } from "../../infer/onnx/efficientad_graph.ts";
import {
  adamNames,
  adamScalars,
  aeParameters,
  buildTrainStepGraph,
  dropoutName,
  dropoutShapes,
  gradName,
  quantilePositions,
  studentParameters,
} from "./train_step_graph.ts";
import { buildTeacherGraph } from "./teacher_graph.ts";

interface GradRef {
  norm: number;
  index: number[];
  value: number[];
}
interface CaseRef {
  loss_hard: number;
  loss_penalty?: number;
  grads: Record<string, GradRef>;
}

/** The Euclidean norm of a vector, accumulated in float64. */
function l2(data: Float32Array): number {
  let sq = 0;
  for (const v of data) sq += v * v;
  return Math.sqrt(sq);
}

const ortTensor = (t: Tensor) => new ort.Tensor("float32", t.data, [...t.shape]);

Deno.test("quantilePositions follows torch.quantile's float32 rank", () => {
  assertEquals(quantilePositions(5, 0.5), { lo: 2, hi: 2, weight: 0 });
  const p = quantilePositions(384 * 56 * 56, 0.999);
  assertEquals([p.lo, p.hi], [1203018, 1203019]);
  assertOk(p.weight > 0 && p.weight < 1);
});

Deno.test("studentParameters lists weight and bias of every student conv", () => {
  const ps = studentParameters(resolveConfig({ size: "s" }));
  assertEquals(ps.map((p) => p.name)[0], "student.conv1.weight");
  assertEquals(ps.length, 8);
  assertEquals(ps[7]?.shape, [768]);
});

for (const penalty of [false, true]) {
  Deno.test({
    name: `student gradient graph matches PyTorch autograd (S, ${
      penalty ? "hard + penalty" : "hard"
    })`,
    ignore: !HAS_SHARED,
    async fn() {
      const ref = JSON.parse(
        await Deno.readTextFile(`${ROOT}tests/fixtures/train_grad/reference.json`),
      ) as { cases: Record<string, CaseRef> };
      const expected = ref.cases[penalty ? "hard_penalty" : "hard"];
      assertOk(expected);
      const config = resolveConfig({ size: "s" });
      const sd = await readTorchCheckpoint(`${SHARED_S}model.pth`);
      const x = item(await readNpy(`${SHARED_S}input.npy`), 0);
      const x1 = { shape: [1, ...x.shape], data: x.data };
      const teacher = await createSession(buildTeacherGraph(config, sd), { intraOpThreads: 2 });
      const tOut = await teacher.session.run({ input: ortTensor(x1) });
      await teacher.session.release();
      const feeds: Record<string, RuntimeTensor> = { input: ortTensor(x1) };
      const t = tOut["teacher"];
      assertOk(t);
      feeds["teacher"] = t;
      if (penalty) {
        feeds["penalty"] = ortTensor(
          await readNpy(`${SHARED_S}../efficientad-s-train/penalty.npy`),
        );
      }
      const params = studentParameters(config);
      for (const p of params) {
        const v = sd.get(p.name);
        assertOk(v);
        feeds[p.name] = ortTensor(v);
      }
      const { session } = await createSession(buildTrainStepGraph(config, { penalty }), {
        intraOpThreads: 2,
      });
      try {
        const out = await session.run(feeds);
        const loss = out["loss_hard"]?.data as Float32Array;
        assertAlmostEquals(loss[0] ?? NaN, expected.loss_hard, 1e-4 * expected.loss_hard);
        if (penalty) {
          const lp = (out["loss_penalty"]?.data as Float32Array)[0] ?? NaN;
          assertAlmostEquals(lp, expected.loss_penalty ?? NaN, 1e-3 * (expected.loss_penalty ?? 0));
        }
        for (const p of params) {
          const r = expected.grads[p.name];
          assertOk(r, p.name);
          const gdata = out[gradName(p.name)]?.data as Float32Array;
          const norm = l2(gdata);
          assertAlmostEquals(norm, r.norm, 1e-3 * r.norm, `${p.name} norm ${norm} vs ${r.norm}`);
          r.index.forEach((i, k) => {
            const want = r.value[k] ?? NaN;
            assertAlmostEquals(gdata[i] ?? NaN, want, 1e-3 * r.norm, `${p.name}[${i}]`);
          });
        }
      } finally {
        await session.release();
      }
    },
  });
}

interface AnomalibCase {
  loss_st: number;
  loss_ae: number;
  loss_stae: number;
  grad_norms: Record<string, number>;
  delta_abs_sum: Record<string, number>;
}

const KINDS = ["brightness", "contrast", "saturation"] as const;
// The `ae_output`-input variant once; the whole step (autoencoder in the graph) per kind.
const ANOMALIB_RUNS = [["brightness", false], ...KINDS.map((k) => [k, true] as const)] as const;
for (const [kind, inGraphAe] of ANOMALIB_RUNS) {
  Deno.test({
    name: `${
      inGraphAe ? "whole step graph (with autoencoder)" : "student step graph"
    } matches anomalib's losses, gradient norms and Adam step (${kind})`,
    ignore: !HAS_SHARED,
    async fn() {
      const trainDir = `${SHARED_S}../efficientad-s-train/`;
      const ref = (JSON.parse(await Deno.readTextFile(`${trainDir}losses.json`)) as Record<
        string,
        AnomalibCase
      >)[kind];
      assertOk(ref);
      const config = resolveConfig({ size: "s" });
      const sd = await readTorchCheckpoint(`${SHARED_S}model.pth`);
      const x = await readNpy(`${trainDir}x.npy`);
      const aug = await readNpy(`${trainDir}aug_${kind}.npy`);
      // Teacher on x; the autoencoder's output on x_aug from the inference graph (eval
      // mode: anomalib's fixture ran with dropout 0).
      const teacher = await createSession(buildTeacherGraph(config, sd), { intraOpThreads: 2 });
      const tOut = await teacher.session.run({ input: ortTensor(x) });
      const taOut = await teacher.session.run({ input: ortTensor(aug) });
      await teacher.session.release();
      const model = {
        config,
        stateDict: sd,
        provenance: { version: "fixture", source: "anomalib" },
        resize: "bilinear" as const,
      };
      const inference = await createSession(buildEfficientAdGraph(model, { debug: true }), {
        intraOpThreads: 2,
      });
      const aOut = await inference.session.run({ input: ortTensor(aug) }, ["ae_out"]);
      await inference.session.release();
      const t = tOut["teacher"];
      const a = aOut["ae_out"];
      assertOk(t && a);
      const { stepSize, biasCorrection2Sqrt } = adamScalars(1e-4, 1);
      const feeds: Record<string, RuntimeTensor> = {
        input: ortTensor(x),
        teacher: t,
        penalty: ortTensor(await readNpy(`${trainDir}penalty.npy`)),
        augmented: ortTensor(aug),
        ...(inGraphAe ? { teacher_augmented: taOut["teacher"] ?? t } : { ae_output: a }),
        "adam.step_size": new ort.Tensor("float32", Float32Array.of(stepSize), []),
        "adam.bias_correction2_sqrt": new ort.Tensor(
          "float32",
          Float32Array.of(biasCorrection2Sqrt),
          [],
        ),
      };
      const params = [...studentParameters(config), ...(inGraphAe ? aeParameters(config) : [])];
      for (const p of params) {
        const v = sd.get(p.name);
        assertOk(v);
        feeds[p.name] = ortTensor(v);
        const names = adamNames(p.name);
        feeds[names.m] = new ort.Tensor("float32", new Float32Array(v.data.length), [...v.shape]);
        feeds[names.v] = new ort.Tensor("float32", new Float32Array(v.data.length), [...v.shape]);
      }
      const graph = buildTrainStepGraph(config, {
        penalty: true,
        stae: true,
        adam: {},
        ...(inGraphAe ? { autoencoder: {} } : {}),
      });
      const { session } = await createSession(graph, { intraOpThreads: 2 });
      try {
        const out = await session.run(feeds);
        const scalarOf = (name: string) => (out[name]?.data as Float32Array)[0] ?? NaN;
        const lossSt = scalarOf("loss_hard") + scalarOf("loss_penalty");
        assertAlmostEquals(lossSt, ref.loss_st, 1e-3 * ref.loss_st, "loss_st");
        assertAlmostEquals(scalarOf("loss_stae"), ref.loss_stae, 1e-3 * ref.loss_stae, "stae");
        if (inGraphAe) {
          assertAlmostEquals(scalarOf("loss_ae"), ref.loss_ae, 1e-3 * ref.loss_ae, "loss_ae");
        }
        const checked = ["student.conv1.weight", "student.conv4.weight"];
        if (inGraphAe) checked.push("ae.decoder.deconv8.weight", "ae.encoder.enconv1.weight");
        for (const name of checked) {
          const want = ref.grad_norms[name] ?? NaN;
          const norm = l2(out[gradName(name)]?.data as Float32Array);
          assertAlmostEquals(norm, want, 1e-3 * want, `${name} gradient norm`);
        }
        const biases = inGraphAe ? Object.keys(ref.delta_abs_sum) : ["student.conv4.bias"];
        for (const bias of biases) {
          const next = out[adamNames(bias).nextParam]?.data as Float32Array;
          const before = sd.get(bias)?.data;
          assertOk(before && next, bias);
          const change = next.map((v, i) => v - (before[i] ?? NaN));
          if (bias === "student.conv4.bias" || bias === "ae.decoder.deconv8.bias") {
            const delta = await readNpy(`${trainDir}delta_${kind}_${bias}.npy`);
            delta.data.forEach((d, i) => {
              assertEquals(Math.sign(change[i] ?? NaN), Math.sign(d), `${bias}[${i}] sign`);
            });
          }
          const absSum = change.reduce((acc, v) => acc + Math.abs(v), 0);
          const wantSum = ref.delta_abs_sum[bias] ?? NaN;
          assertAlmostEquals(absSum, wantSum, 1e-3 * wantSum, `${bias} summed change`);
        }
      } finally {
        await session.release();
      }
    },
  });
}

Deno.test("dropout masks scale the decoder's forward values and gradients", async () => {
  const config = resolveConfig({ size: "s" });
  const sd = syntheticStateDict(config, 3);
  const [H, W] = config.imageSize;
  const image = new Float32Array(3 * H * W).map((_, i) => (Math.sin(i * 0.37) + 1) / 2);
  const c = config.teacherOutChannels;
  const t = new Float32Array(c * 56 * 56).map((_, i) => Math.cos(i * 0.11));
  const feedsFor = (masks: (layer: string) => number): Record<string, RuntimeTensor> => {
    const feeds: Record<string, RuntimeTensor> = {
      input: new ort.Tensor("float32", image, [1, 3, H, W]),
      augmented: new ort.Tensor("float32", image, [1, 3, H, W]),
      teacher: new ort.Tensor("float32", t, [1, c, 56, 56]),
      teacher_augmented: new ort.Tensor("float32", t, [1, c, 56, 56]),
    };
    for (const p of [...studentParameters(config), ...aeParameters(config)]) {
      const v = sd.get(p.name);
      assertOk(v);
      feeds[p.name] = ortTensor(v);
    }
    for (const [layer, shape] of dropoutShapes(config)) {
      const n = shape.reduce((a, b) => a * b, 1);
      feeds[dropoutName(layer)] = new ort.Tensor(
        "float32",
        new Float32Array(n).fill(masks(layer)),
        shape,
      );
    }
    return feeds;
  };
  const graph = buildTrainStepGraph(config, { stae: true, autoencoder: { dropout: true } });
  const plain = buildTrainStepGraph(config, { stae: true, autoencoder: {} });
  const { session } = await createSession(graph, { intraOpThreads: 2 });
  const reference = await createSession(plain, { intraOpThreads: 2 });
  try {
    const ones = await session.run(feedsFor(() => 1));
    const feeds = feedsFor(() => 1);
    for (const name of Object.keys(feeds)) if (name.startsWith("dropout.")) delete feeds[name];
    const want = await reference.session.run(feeds);
    const lossOf = (o: Record<string, RuntimeTensor>, k: string) =>
      (o[k]?.data as Float32Array)[0] ?? NaN;
    assertEquals(lossOf(ones, "loss_ae"), lossOf(want, "loss_ae"));
    // Dropping everything after deconv6 cuts every gradient path to deconv1..6 and the
    // encoder, while deconv7 and deconv8 still learn (from their biases).
    const cut = await session.run(feedsFor((l) => (l === "decoder.deconv6" ? 0 : 1.25)));
    for (const name of ["ae.decoder.deconv3.weight", "ae.encoder.enconv1.weight"]) {
      assertEquals(l2(cut[gradName(name)]?.data as Float32Array), 0, name);
    }
    assertOk(l2(cut[gradName("ae.decoder.deconv8.bias")]?.data as Float32Array) > 0);
  } finally {
    await session.release();
    await reference.session.release();
  }
});

interface SyntheticRef {
  loss_hard: number;
  loss_penalty: number;
  loss_stae?: number;
  loss_ae?: number;
  grads: Record<string, GradRef>;
  /** After three Adam steps on the same images: per parameter, (after - before). */
  adam3?: Record<string, GradRef>;
}

for (const [name, whole] of [["s-padding", true], ["m", false]] as const) {
  Deno.test(
    `${
      whole ? "whole step" : "student"
    } gradient graph matches PyTorch autograd (synthetic ${name})`,
    async () => {
      const ref = (JSON.parse(
        await Deno.readTextFile(`${ROOT}tests/fixtures/train_grad/reference.json`),
      ) as { synthetic: Record<string, SyntheticRef> }).synthetic[name];
      assertOk(ref);
      const own = await loadOwnCase(name);
      const { config } = own.model;
      const sd = syntheticStateDict(config, 0);
      const x = own.input;
      const image = (f: (v: number) => number) =>
        new ort.Tensor("float32", x.data.map((v) => Math.fround(f(v))), [...x.shape]);
      const teacher = await createSession(buildTeacherGraph(config, sd), { intraOpThreads: 2 });
      const t = (await teacher.session.run({ input: ortTensor(x) }))["teacher"];
      const augmented = image((v) => Math.fround(0.9) * v);
      const ta = (await teacher.session.run({ input: augmented }))["teacher"];
      await teacher.session.release();
      assertOk(t && ta);
      const feeds: Record<string, RuntimeTensor> = {
        input: ortTensor(x),
        teacher: t,
        penalty: image((v) => 1 - v),
        ...(whole ? { augmented, teacher_augmented: ta } : {}),
      };
      const params = [...studentParameters(config), ...(whole ? aeParameters(config) : [])];
      for (const p of params) {
        const v = sd.get(p.name);
        assertOk(v);
        feeds[p.name] = ortTensor(v);
      }
      // The whole step also runs Adam: the first call's gradients are checked, then two
      // more steps feed the updated parameters and Adam state back in.
      if (whole) {
        for (const p of params) {
          const n = adamNames(p.name);
          const size = p.shape.reduce((a, b) => a * b, 1);
          feeds[n.m] = new ort.Tensor("float32", new Float32Array(size), [...p.shape]);
          feeds[n.v] = new ort.Tensor("float32", new Float32Array(size), [...p.shape]);
        }
      }
      const setStep = (step: number) => {
        const { stepSize, biasCorrection2Sqrt } = adamScalars(1e-4, step);
        feeds["adam.step_size"] = new ort.Tensor("float32", Float32Array.of(stepSize), []);
        feeds["adam.bias_correction2_sqrt"] = new ort.Tensor(
          "float32",
          Float32Array.of(biasCorrection2Sqrt),
          [],
        );
      };
      if (whole) setStep(1);
      const graph = buildTrainStepGraph(
        config,
        whole ? { penalty: true, stae: true, autoencoder: {}, adam: {} } : { penalty: true },
      );
      const { session } = await createSession(graph, { intraOpThreads: 2 });
      try {
        const out = await session.run(feeds);
        const scalarOf = (k: string) => (out[k]?.data as Float32Array)[0] ?? NaN;
        const losses = whole
          ? ["loss_hard", "loss_penalty", "loss_stae", "loss_ae"] as const
          : ["loss_hard", "loss_penalty"] as const;
        for (const k of losses) {
          const want = ref[k] ?? NaN;
          assertAlmostEquals(scalarOf(k), want, 1e-4 * want, k);
        }
        assertEquals(Object.keys(ref.grads).length, params.length);
        for (const p of params) {
          const r = ref.grads[p.name];
          assertOk(r, p.name);
          const gdata = out[gradName(p.name)]?.data as Float32Array;
          assertAlmostEquals(l2(gdata), r.norm, 1e-3 * r.norm, `${p.name} norm`);
          r.index.forEach((i, k) => {
            assertAlmostEquals(gdata[i] ?? NaN, r.value[k] ?? NaN, 1e-3 * r.norm, p.name);
          });
        }
        if (!whole) return;
        let last = out;
        for (const step of [2, 3]) {
          for (const p of params) {
            const n = adamNames(p.name);
            for (const [to, from] of [[p.name, n.nextParam], [n.m, n.nextM], [n.v, n.nextV]]) {
              const v = last[from ?? ""];
              assertOk(v && to);
              feeds[to] = v;
            }
          }
          setStep(step);
          last = await session.run(feeds);
        }
        for (const p of params) {
          const r = ref.adam3?.[p.name];
          const before = sd.get(p.name)?.data;
          const after = last[adamNames(p.name).nextParam]?.data as Float32Array;
          assertOk(r && before && after, p.name);
          const change = after.map((v, i) => v - (before[i] ?? NaN));
          assertAlmostEquals(l2(change), r.norm, 1e-3 * r.norm, `${p.name} change after 3 steps`);
          r.index.forEach((i, k) => {
            assertAlmostEquals(change[i] ?? NaN, r.value[k] ?? NaN, 1e-3 * r.norm, p.name);
          });
        }
      } finally {
        await session.release();
      }
    },
  );
}
