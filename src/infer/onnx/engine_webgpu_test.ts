import { createLogger } from "../../core/log.ts";
import { resolveConfig } from "../../model/config.ts";
import { syntheticModel } from "../../model/synthetic.ts";
import { assertEquals, assertOk } from "../../../tests/assert.ts";
import { assertClose } from "../../../tests/parity.ts";
import { evalWithoutVulkanDriver, HAS_WEBGPU, randomImage } from "../../../tests/support/webgpu.ts";
import { createOnnxEngine } from "./engine.ts";

for (const size of ["s", "m"] as const) {
  for (const padding of [false, true]) {
    Deno.test({
      name: `createOnnxEngine() on webgpu matches the CPU provider (${size.toUpperCase()}, ${
        padding ? "padding" : "no padding"
      })`,
      ignore: !HAS_WEBGPU,
      async fn() {
        const model = syntheticModel(resolveConfig({ size, teacherOutChannels: 64, padding }), 3);
        const image = randomImage(256, 256, 7);
        const lines: string[] = [];
        await using gpu = await createOnnxEngine(model, {
          executionProviders: ["webgpu"],
          logger: createLogger({ sink: (l) => lines.push(l) }),
        });
        assertEquals(gpu.provider, "webgpu", lines.join("\n"));
        assertOk(gpu.adapter !== undefined && gpu.description.includes("webgpu"));
        assertOk(lines.some((l) => l.includes("provider=webgpu")), lines.join("\n"));
        const got = await gpu.run(image);
        await using cpu = await createOnnxEngine(model);
        const want = await cpu.run(image);
        const rel = assertClose("anomaly_map", got.anomalyMap, want.anomalyMap);
        const relScore = assertClose("pred_score", got.predScore, want.predScore, {
          rangeOf: want.anomalyMap,
        });
        assertClose("map_st", got.mapSt, want.mapSt!);
        assertClose("map_ae", got.mapAe, want.mapAe!);
        console.log(`map ${rel.toExponential(1)}, score ${relScore.toExponential(1)} of the range`);
      },
    });
  }
}

Deno.test({
  name: "createOnnxEngine() without a WebGPU adapter falls back to the CPU and says why",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const url = (p: string) => JSON.stringify(import.meta.resolve(p));
    const code = [
      `import { createLogger } from ${url("../../core/log.ts")};`,
      `import { resolveConfig } from ${url("../../model/config.ts")};`,
      `import { syntheticModel } from ${url("../../model/synthetic.ts")};`,
      `import { createOnnxEngine } from ${url("./engine.ts")};`,
      `const model = syntheticModel(resolveConfig({ size: "s", teacherOutChannels: 64 }));`,
      `await using e = await createOnnxEngine(model, { executionProviders: ["webgpu", "cpu"],`,
      `  logger: createLogger({ sink: (l) => console.log(l) }) });`,
      `console.log(JSON.stringify({ provider: e.provider, description: e.description }));`,
    ].join("\n");
    const { success, lines, stderr } = await evalWithoutVulkanDriver(code);
    assertOk(success, stderr);
    assertEquals(JSON.parse(lines.at(-1) ?? ""), {
      provider: "cpu",
      description: `onnx (cpu, ${navigator.hardwareConcurrency} threads)`,
    });
    const warn = lines.find((l) => l.startsWith("warn") && l.includes("fallback"));
    assertOk(warn?.includes("using=cpu"), lines.join("\n"));
    assertOk(warn?.includes("webgpu (no Vulkan driver: install mesa-vulkan-drivers"), warn);
  },
});

Deno.test({
  name: "createOnnxEngine() with precision fp16 runs a half-precision graph on shader-f16",
  ignore: !HAS_WEBGPU,
  async fn() {
    const model = syntheticModel(resolveConfig({ size: "s", teacherOutChannels: 64 }), 3);
    const image = randomImage(256, 256, 7);
    const lines: string[] = [];
    await using gpu = await createOnnxEngine(model, {
      executionProviders: ["webgpu"],
      precision: "fp16",
      logger: createLogger({ sink: (l) => lines.push(l) }),
    });
    if (!gpu.adapter?.shaderF16) {
      // Without shader-f16 the float32 graph serves, and the log says why.
      assertOk(lines.some((l) => l.includes("fp16 graph not used")), lines.join("\n"));
      return;
    }
    assertOk(gpu.description.includes("webgpu fp16"), gpu.description);
    const got = await gpu.run(image);
    await using cpu = await createOnnxEngine(model);
    const want = await cpu.run(image);
    // Half precision: 11-bit mantissas through three networks (measured: 1.5e-2 of the range).
    const rel = assertClose("anomaly_map", got.anomalyMap, want.anomalyMap, { tolerance: 5e-2 });
    console.log(`fp16 map ${rel.toExponential(1)} of the range`);
  },
});

Deno.test("createOnnxEngine() with precision fp16 off webgpu serves float32 and says so", async () => {
  const model = syntheticModel(resolveConfig({ size: "s", teacherOutChannels: 64 }), 3);
  const lines: string[] = [];
  await using cpu = await createOnnxEngine(model, {
    precision: "fp16",
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  assertEquals(cpu.provider, "cpu");
  assertOk(lines.some((l) => l.includes("fp16 graph not used") && l.includes("webgpu only")));
});
