import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { ModelFormatError } from "../core/errors.ts";
import { tensor } from "../core/tensor.ts";
import { resolveConfig } from "./config.ts";
import type { EfficientAdModel } from "./model.ts";
import {
  int8FileName,
  isProjectModelDir,
  MODEL_JSON,
  PROJECT_FORMAT,
  readProjectModel,
  WEIGHTS_FILE,
  writeInt8Graph,
  writeProjectModel,
} from "./project_format.ts";
import { sha256Hex } from "../core/sha256.ts";
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

const INT8_INFO = {
  calibration: {
    method: "percentile" as const,
    percentile: 99.99,
    frames: 12,
    seconds: 3.5,
    createdAt: "2024-05-02T08:00:00Z",
  },
  quantiles: { qaSt: 0.1, qbSt: 0.3, qaAe: 0.05, qbAe: 0.2 },
  thresholds: { threshold: 0.58, min: 0.1, max: 0.58 },
};

Deno.test("writeInt8Graph() adds the int8 block and file, and readProjectModel() reads them back", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    const graph = Uint8Array.of(1, 2, 3, 4);
    const int8 = await writeInt8Graph(dir, graph, INT8_INFO);
    assertEquals(int8.sha256, await sha256Hex(graph));
    assertEquals(int8.path, `${dir}/${int8FileName(int8.sha256)}`);
    assertEquals(await Deno.readFile(int8.path), graph);
    const model = await readProjectModel(dir);
    assertEquals(model.int8, int8);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/${MODEL_JSON}`));
    assertEquals(json.int8.file, int8FileName(int8.sha256));
    assertEquals(json.int8.calibration.created_at, "2024-05-02T08:00:00Z");
    assertEquals(json.int8.quantiles, { qa_st: 0.1, qb_st: 0.3, qa_ae: 0.05, qb_ae: 0.2 });
  });
});

Deno.test("writeInt8Graph() replaces the previous graph and removes its file after the commit", async () => {
  await withTempDir(async (dir) => {
    await writeProjectModel(dir, smallModel());
    const first = await writeInt8Graph(dir, Uint8Array.of(1), INT8_INFO);
    const second = await writeInt8Graph(dir, Uint8Array.of(2), INT8_INFO);
    assertOk(first.path !== second.path);
    assertEquals((await readProjectModel(dir)).int8?.path, second.path);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, [MODEL_JSON, int8FileName(second.sha256), WEIGHTS_FILE].sort());
  });
});

Deno.test("writeProjectModel() copies a model's int8 graph into a new directory, and drops it for a model without one", async () => {
  await withTempDir(async (dir) => {
    const a = `${dir}/a`;
    const b = `${dir}/b`;
    await writeProjectModel(a, smallModel());
    await writeInt8Graph(a, Uint8Array.of(7, 7), INT8_INFO);
    await writeProjectModel(b, await readProjectModel(a));
    const copied = await readProjectModel(b);
    assertEquals(copied.int8?.path, `${b}/${int8FileName(copied.int8!.sha256)}`);
    assertEquals(await Deno.readFile(copied.int8!.path), Uint8Array.of(7, 7));
    // New weights without an int8 graph: the old graph must not serve them.
    await writeProjectModel(b, smallModel());
    assertEquals((await readProjectModel(b)).int8, undefined);
    assertEquals([...Deno.readDirSync(b)].length, 2);
  });
});

Deno.test("readProjectModel() refuses an int8 file name outside the directory and a bad sha256", async () => {
  await expectJsonError((json) => {
    json.int8 = {
      file: "../elsewhere.onnx",
      sha256: "0".repeat(64),
      calibration: { method: "minmax", frames: 1, seconds: 0, created_at: "x" },
      quantiles: { qa_st: 0, qb_st: 1, qa_ae: 0, qb_ae: 1 },
      thresholds: { threshold: 1, min: 0, max: 1 },
    };
  }, "int8.file: must be a plain file name inside the model directory");
  await expectJsonError((json) => {
    json.int8 = {
      file: "model.int8-000000000000.onnx",
      sha256: "xyz",
      calibration: { method: "minmax", frames: 1, seconds: 0, created_at: "x" },
      quantiles: { qa_st: 0, qb_st: 1, qa_ae: 0, qb_ae: 1 },
      thresholds: { threshold: 1, min: 0, max: 1 },
    };
  }, "int8.sha256: must be 64 lowercase hex digits");
});
