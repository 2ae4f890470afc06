import * as tf from "@tensorflow/tfjs-core";
import { assertEquals } from "../../../tests/assert.ts";
import { selectTfjsBackend } from "../../infer/tfjs/backend.ts";
import { ensureGradients, hasGradients } from "./gradients.ts";

Deno.test("ensureGradients() registers tfjs's gradient functions", async () => {
  await selectTfjsBackend();
  await ensureGradients();
  assertEquals(hasGradients(), true);
  const x = tf.scalar(3);
  const g = tf.grad((a: tf.Tensor) => tf.add(tf.mul(a, a), a))(x);
  assertEquals(g.dataSync()[0], 7);
  tf.dispose([x, g]);
});
