import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { ModelFormatError } from "../core/errors.ts";
import { tensor } from "../core/tensor.ts";
import { resolveConfig } from "./config.ts";
import type { EfficientAdModel } from "./model.ts";
import {
  isProjectModelDir,
  MODEL_JSON,
  PROJECT_FORMAT,
  readProjectModel,
  WEIGHTS_FILE,
  writeProjectModel,
} from "./project_format.ts";
import { encodeSafetensors, readSafetensors } from "./safetensors.ts";
import type { StateDict } from "./state_dict.ts";
import { syntheticStateDict } from "./synthetic.ts";

/** anomalib's default EfficientAD-S with synthetic weights, quantiles and full metadata. */
function fullModel(): EfficientAdModel {
  const config = resolveConfig({});
  const stateDict = syntheticStateDict(config, 0);
  const q = { qa_st: 0.5, qb_st: 2.25, qa_ae: 0.25, qb_ae: 1.75 };
  for (const [k, v] of Object.entries(q)) {
    stateDict.set(`quantiles.${k}`, tensor([], new Float32Array([v])));
  }
  return {
    config,
    stateDict,
    resize: "bilinear",
    thresholds: { threshold: 0.61, min: 0.12, max: 1.4 },
    provenance: {
      version: "synthetic-0",
      source: "synthetic",
      createdAt: "2024-05-01T12:00:00Z",
      notes: "seed 0",
    },
  };
}

/** A small model (8 teacher channels) for the error cases, so they stay fast. */
function smallModel(): EfficientAdModel {
  const config = resolveConfig({ teacherOutChannels: 8, padding: true, imageSize: [256, 320] });
  return {
    config,
    stateDict: syntheticStateDict(config, 1),
    resize: "bilinear",
    provenance: { version: "small", source: "synthetic" },
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes the small model, lets `edit` change model.json, and expects a load error. */
async function expectJsonError(
  edit: (json: Record<string, unknown>) => void,
  problem: string,
): Promise<void> {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    const path = `${dir}/${MODEL_JSON}`;
    const json = JSON.parse(await Deno.readTextFile(path));
    edit(json);
    await Deno.writeTextFile(path, JSON.stringify(json));
    const e = await assertRejects(() => readProjectModel(dir), ModelFormatError, problem);
    assertOk(e.message.startsWith(`Cannot load model ${path}: `), e.message);
  });
}

/** Writes the small model, lets `edit` change the state dict in the weights file, and expects a load error. */
async function expectWeightsError(edit: (dict: StateDict) => void, problem: string) {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    const path = `${dir}/${WEIGHTS_FILE}`;
    const { tensors } = await readSafetensors(path);
    edit(tensors);
    await Deno.writeFile(path, encodeSafetensors(tensors));
    await assertRejects(() => readProjectModel(dir), ModelFormatError, `${path}: `);
    await assertRejects(() => readProjectModel(dir), ModelFormatError, problem);
  });
}

Deno.test("writeProjectModel() and readProjectModel() round-trip a full EfficientAD-S model", async () => {
  await withTempDir(async (dir) => {
    const model = fullModel();
    await writeProjectModel(`${dir}/bottle`, model);
    const back = await readProjectModel(`${dir}/bottle`);
    assertEquals(back.config, model.config);
    assertEquals(back.resize, "bilinear");
    assertEquals(back.thresholds, model.thresholds);
    assertEquals(back.provenance, model.provenance);
    assertEquals(back.stateDict.size, model.stateDict.size);
    for (const [key, t] of model.stateDict) assertEquals(back.stateDict.get(key), t, key);
    assertEquals(back.stateDict.get("quantiles.qb_st")?.shape, []);
  });
});

Deno.test("writeProjectModel() writes model.json in the documented layout", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, fullModel());
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/${MODEL_JSON}`)), {
      format: PROJECT_FORMAT,
      config: {
        size: "s",
        teacher_out_channels: 384,
        padding: false,
        pad_maps: true,
        image_size: [256, 256],
      },
      resize: "bilinear",
      thresholds: { threshold: 0.61, min: 0.12, max: 1.4 },
      provenance: {
        version: "synthetic-0",
        source: "synthetic",
        created_at: "2024-05-01T12:00:00Z",
        notes: "seed 0",
      },
    });
    const { metadata } = await readSafetensors(`${dir}/${WEIGHTS_FILE}`);
    assertEquals(metadata, { format: PROJECT_FORMAT });
  });
});

Deno.test("writeProjectModel() leaves optional fields out and overwrites without temp files", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, fullModel());
    const small = smallModel();
    await writeProjectModel(dir, small);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assertEquals(names.sort(), [MODEL_JSON, WEIGHTS_FILE]);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/${MODEL_JSON}`));
    assertEquals(Object.keys(json).sort(), ["config", "format", "provenance", "resize"]);
    const back = await readProjectModel(dir);
    assertEquals(back.config, small.config);
    assertEquals("thresholds" in back, false);
    assertEquals(back.provenance, { version: "small", source: "synthetic" });
    assertEquals(back.stateDict.has("quantiles.qa_st"), false);
  });
});

Deno.test("writeProjectModel() rejects a state dict that does not match and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.stateDict.delete("student.conv2.weight");
    await assertRejects(
      () => writeProjectModel(`${dir}/m`, model),
      RangeError,
      `Cannot write model ${dir}/m: state dict does not match`,
    );
    await assertRejects(
      () =>
        writeProjectModel(`${dir}/m`, {
          ...smallModel(),
          thresholds: { threshold: 1, min: 2, max: 1 },
        }),
      RangeError,
      "thresholds.max: max must not be below min",
    );
    assertEquals(await isProjectModelDir(`${dir}/m`), false);
  });
});

Deno.test("readProjectModel() names a missing model.json or weights file", async () => {
  await withTempDir(async (dir) => {
    await assertRejects(
      () => readProjectModel(dir),
      ModelFormatError,
      `Cannot load model ${dir}/${MODEL_JSON}: the file does not exist`,
    );
    await writeProjectModel(dir, smallModel());
    await Deno.remove(`${dir}/${WEIGHTS_FILE}`);
    await assertRejects(
      () => readProjectModel(dir),
      ModelFormatError,
      `Cannot load model ${dir}/${WEIGHTS_FILE}: the file does not exist`,
    );
  });
});

Deno.test("readProjectModel() rejects model.json that is not JSON", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    await Deno.writeTextFile(`${dir}/${MODEL_JSON}`, '{"format": ');
    await assertRejects(
      () => readProjectModel(dir),
      ModelFormatError,
      `Cannot load model ${dir}/${MODEL_JSON}: not valid JSON`,
    );
  });
});

Deno.test("readProjectModel() rejects another format version", async () => {
  await expectJsonError((j) => {
    j.format = "efficientad-edge/2";
  }, 'format is "efficientad-edge/2", expected "efficientad-edge/1"');
  await expectJsonError((j) => {
    delete j.format;
  }, "format: Invalid input");
});

Deno.test("readProjectModel() rejects unknown keys, naming them", async () => {
  await expectJsonError((j) => {
    j.threshold = 3;
  }, "threshold: unknown key");
  await expectJsonError((j) => {
    (j.config as Record<string, unknown>).pad_map = true;
  }, "config.pad_map: unknown key");
});

Deno.test("readProjectModel() rejects missing and mistyped fields, naming them", async () => {
  await expectJsonError((j) => {
    delete (j.config as Record<string, unknown>).pad_maps;
  }, "config.pad_maps: Invalid input");
  await expectJsonError((j) => {
    (j.config as Record<string, unknown>).image_size = [256, "320"];
  }, "config.image_size[1]: Invalid input");
  await expectJsonError((j) => {
    (j.config as Record<string, unknown>).size = "l";
  }, "config.size: Invalid option");
  await expectJsonError((j) => {
    j.resize = "nearest";
  }, "resize: Invalid input");
  await expectJsonError((j) => {
    j.thresholds = { threshold: 1, min: 0 };
  }, "thresholds.max: Invalid input");
  await expectJsonError((j) => {
    delete (j.provenance as Record<string, unknown>).version;
  }, "provenance.version: Invalid input");
});

Deno.test("readProjectModel() rejects an image size the autoencoder cannot run", async () => {
  await expectJsonError((j) => {
    (j.config as Record<string, unknown>).image_size = [128, 256];
  }, "config: Cannot use image height 128");
});

Deno.test("readProjectModel() rejects weights with a missing key or a wrong shape", async () => {
  await expectWeightsError((d) => {
    d.delete("ae.decoder.deconv8.bias");
  }, 'missing key "ae.decoder.deconv8.bias"');
  await expectWeightsError((d) => {
    d.set("teacher.conv1.weight", tensor([128, 3, 4, 3]));
  }, 'key "teacher.conv1.weight" has shape [128, 3, 4, 3], expected [128, 3, 4, 4]');
});

Deno.test("readProjectModel() rejects a truncated weights file", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    const path = `${dir}/${WEIGHTS_FILE}`;
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 100));
    await assertRejects(
      () => readProjectModel(dir),
      ModelFormatError,
      `Cannot load model ${path}: not a valid safetensors file: truncated`,
    );
  });
});

Deno.test("isProjectModelDir() is true only for a directory with model.json", async () => {
  await withTempDir(async (dir) => {
    assertEquals(await isProjectModelDir(dir), false);
    assertEquals(await isProjectModelDir(`${dir}/missing`), false);
    await writeProjectModel(`${dir}/m`, smallModel());
    assertEquals(await isProjectModelDir(`${dir}/m`), true);
    assertEquals(await isProjectModelDir(`${dir}/m/${MODEL_JSON}`), false);
    assertEquals(await isProjectModelDir(`${dir}/m/${MODEL_JSON}/x`), false);
    await Deno.mkdir(`${dir}/odd/${MODEL_JSON}`, { recursive: true });
    assertEquals(await isProjectModelDir(`${dir}/odd`), false);
  });
});
