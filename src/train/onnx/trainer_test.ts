import { assertAlmostEquals, assertEquals, assertOk } from "../../../tests/assert.ts";
import { loadOwnCase, ROOT } from "../../../tests/parity.ts";
import type { StateDict } from "../../model/state_dict.ts";
import { syntheticStateDict } from "../../model/synthetic.ts";
import { OnnxTrainer } from "./trainer.ts";

interface ChangeRef {
  norm: number;
  index: number[];
  value: number[];
}

Deno.test("OnnxTrainer: three Adam steps, resumed after the first, match PyTorch", async () => {
  const ref = (JSON.parse(
    await Deno.readTextFile(`${ROOT}tests/fixtures/train_grad/reference.json`),
  ) as { synthetic: Record<string, { adam3: Record<string, ChangeRef> }> }).synthetic[
    "s-padding"
  ]?.adam3;
  assertOk(ref);
  const own = await loadOwnCase("s-padding");
  const { config } = own.model;
  const sd = syntheticStateDict(config, 0);
  const x = own.input;
  const images = {
    x,
    penalty: { shape: x.shape, data: x.data.map((v) => 1 - v) },
    augmented: { shape: x.shape, data: x.data.map((v) => Math.fround(0.9) * v) },
  };
  let resumed: StateDict;
  let adam: ReturnType<OnnxTrainer["adamState"]>;
  {
    await using first = await OnnxTrainer.create({ config, stateDict: sd, dropout: 0, threads: 2 });
    const losses = await first.trainStep(images, 1e-4);
    assertOk(losses.total > 0 && Number.isFinite(losses.total));
    resumed = new Map([...sd, ...first.parameters()]);
    adam = first.adamState();
  }
  assertEquals(adam.step, 1);
  await using trainer = await OnnxTrainer.create({
    config,
    stateDict: resumed,
    dropout: 0,
    threads: 2,
    resume: adam,
  });
  await trainer.trainStep(images, 1e-4);
  await trainer.trainStep(images, 1e-4);
  assertEquals(trainer.steps, 3);
  const after = trainer.parameters();
  assertEquals(after.size, Object.keys(ref).length);
  for (const [name, r] of Object.entries(ref)) {
    const a = after.get(name)?.data;
    const b = sd.get(name)?.data;
    assertOk(a && b, name);
    const change = a.map((v, i) => v - (b[i] ?? NaN));
    let sq = 0;
    for (const v of change) sq += v * v;
    assertAlmostEquals(Math.sqrt(sq), r.norm, 1e-3 * r.norm, `${name} change norm`);
    r.index.forEach((i, k) => {
      assertAlmostEquals(change[i] ?? NaN, r.value[k] ?? NaN, 1e-3 * r.norm, name);
    });
  }
});

Deno.test("OnnxTrainer: dropout on runs and keeps the losses finite", async () => {
  const own = await loadOwnCase("s-padding");
  const { config } = own.model;
  let seed = 1;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  await using trainer = await OnnxTrainer.create({
    config,
    stateDict: syntheticStateDict(config, 0),
    threads: 2,
    random,
  });
  const x = own.input;
  const losses = await trainer.trainStep({ x, penalty: x, augmented: x }, 1e-4);
  for (const v of Object.values(losses)) assertOk(Number.isFinite(v));
});
