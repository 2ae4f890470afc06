import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { ConfigError } from "./config_error.ts";
import { DEFAULTS } from "./defaults.ts";
import { parsePipeline } from "./load.ts";
import { durationMs } from "./schema.ts";

const CAMERAS = `cameras:
  - name: top
    url: lavfi:testsrc2
  - name: side
    url: lavfi:testsrc2
`;

function issuesOf(text: string): string[] {
  const e = assertThrows(() => parsePipeline(text, "r.yaml", { env: {} }), ConfigError);
  return (e as ConfigError).issues.map((i) => `${i.path} (line ${i.line}): ${i.message}`);
}

Deno.test("parsePipeline() fills every retrain default", () => {
  const p = parsePipeline(CAMERAS, "r.yaml", { env: {}, baseDir: "/srv/line3", hostname: "h" });
  assertEquals(p.retrain, {
    enabled: false,
    store: {
      dir: "/srv/line3/data/retrain",
      maxFrames: 1000,
      maxOperatorFrames: 1000,
      maxBytes: 512 * 1024 * 1024,
      quantile: 0.5,
      minIntervalMs: 60_000,
      eventGuardMs: 30_000,
      duplicateThreshold: 3,
    },
    triggers: {
      intervalMs: null,
      dailyAt: [],
      timeZone: "utc",
      minNewFrames: null,
      drift: null,
      cooldownMs: 600_000,
    },
    training: {
      steps: 1000,
      engine: "onnx",
      executionProviders: null,
      teacher: null,
      penaltyImages: null,
      imageSize: null,
    },
    promotion: {
      keep: 3,
      margins: { flaggedFraction: 0.05, medianNormalized: 0.1, detectedFraction: 0.1, auroc: 0.02 },
    },
    bootstrap: { frames: 50 },
    cameras: [
      { camera: "top", enabled: false, storeKey: "top" },
      { camera: "side", enabled: false, storeKey: "side" },
    ],
  });
  assertEquals(p.retrain.bootstrap.frames, DEFAULTS.retrain.bootstrap.frames);
});

Deno.test("parsePipeline() reads a full retrain section and the per-camera overrides", () => {
  const text = `cameras:
  - name: top
    url: lavfi:testsrc2
    retrain: { store_key: line3 }
  - name: side
    url: lavfi:testsrc2
    retrain: { store_key: line3 }
  - name: door
    url: lavfi:testsrc2
    retrain: { enabled: false }
retrain:
  enabled: true
  store:
    dir: /var/lib/efficientad/retrain
    max_frames: 400
    max_operator_frames: 50
    max_bytes: 100000000
    quantile: 0.8
    min_interval_ms: 5000
    event_guard_ms: 0
    duplicate_threshold: 2.5
  triggers:
    interval: 6h
    daily_at: ["14:30", "2:00", "02:00"]
    time_zone: local
    min_new_frames: 200
    drift: { window: 50, bound: 1.2, factor: 1.5 }
    cooldown: 1h30m
  training:
    steps: 300
    engine: tfjs
    execution_providers: [webgpu, cpu]
    teacher: models/teacher.pth
    penalty_images: data/imagenette
    image_size: [256, 320]
  promotion:
    keep: 5
    margins: { flagged: 0.1, median_normalized: 0.2, detected: 0, auroc: 0.05 }
  bootstrap:
    frames: 20
`;
  const p = parsePipeline(text, "r.yaml", { env: {}, baseDir: "/srv/line3" });
  assertEquals(p.retrain, {
    enabled: true,
    store: {
      dir: "/var/lib/efficientad/retrain",
      maxFrames: 400,
      maxOperatorFrames: 50,
      maxBytes: 100_000_000,
      quantile: 0.8,
      minIntervalMs: 5000,
      eventGuardMs: 0,
      duplicateThreshold: 2.5,
    },
    triggers: {
      intervalMs: 6 * 3_600_000,
      dailyAt: ["02:00", "14:30"],
      timeZone: "local",
      minNewFrames: 200,
      drift: { window: 50, bound: 1.2, factor: 1.5 },
      cooldownMs: 90 * 60_000,
    },
    training: {
      steps: 300,
      engine: "tfjs",
      executionProviders: ["webgpu", "cpu"],
      teacher: "/srv/line3/models/teacher.pth",
      penaltyImages: "/srv/line3/data/imagenette",
      imageSize: [256, 320],
    },
    promotion: {
      keep: 5,
      margins: { flaggedFraction: 0.1, medianNormalized: 0.2, detectedFraction: 0, auroc: 0.05 },
    },
    bootstrap: { frames: 20 },
    cameras: [
      { camera: "top", enabled: true, storeKey: "line3" },
      { camera: "side", enabled: true, storeKey: "line3" },
      { camera: "door", enabled: false, storeKey: "door" },
    ],
  });
});

Deno.test("parsePipeline() reports bad retrain values with their lines", () => {
  const text = `${CAMERAS}    retrain: { store_key: "Line 3" }
retrain:
  enabled: yes
  store:
    quantile: 0
    max_bytes: -1
    duplicate_threshold: -0.5
  triggers:
    interval: 6 hours
    daily_at: ["24:00"]
    time_zone: Europe/Paris
    drift: { window: 10 }
    cooldown: 0
  training:
    steps: 0
    engine: torch
    image_size: 128
  promotion:
    keep: 0
    margins: { auroc: 2 }
  bootstrap:
    frames: 1.5
`;
  assertEquals(issuesOf(text), [
    "cameras[1].retrain.store_key (line 6): expected a path-safe key: lower-case letters, " +
    "digits, _ and -, starting with a letter or digit",
    "retrain.enabled (line 8): expected true or false",
    "retrain.store.quantile (line 10): expected a number above 0, at most 1",
    "retrain.store.max_bytes (line 11): expected a positive integer",
    "retrain.store.duplicate_threshold (line 12): expected a number of at least 0",
    "retrain.triggers.interval (line 14): expected a duration such as 6h, 90m, 1h30m or 500ms " +
    "(or a number of milliseconds)",
    "retrain.triggers.daily_at[0] (line 15): expected a time HH:MM between 00:00 and 23:59",
    "retrain.triggers.time_zone (line 16): expected utc or local",
    "retrain.triggers.drift (line 17): expected bound, factor or both (what counts as drift)",
    "retrain.triggers.cooldown (line 18): expected a duration such as 6h, 90m, 1h30m or 500ms " +
    "(or a number of milliseconds)",
    "retrain.training.steps (line 20): expected a positive integer",
    "retrain.training.engine (line 21): expected onnx or tfjs",
    "retrain.training.image_size (line 22): expected an image size of at least 256",
    "retrain.promotion.keep (line 24): expected a positive integer",
    "retrain.promotion.margins.auroc (line 25): expected a number from 0 to 1",
    "retrain.bootstrap.frames (line 27): expected a positive integer",
  ]);
});

Deno.test("parsePipeline() rejects unknown retrain keys with a suggestion", () => {
  const text = `${CAMERAS}    retrain: { store_keys: line3 }
retrain:
  enable: true
  store:
    max_frame: 10
  triggers:
    drift: { window: 10, bound: 1, facter: 2 }
  promotion:
    margins: { flaged: 0.1 }
`;
  assertEquals(issuesOf(text), [
    'cameras[1].retrain.store_keys (line 6): unknown key (did you mean "store_key"?)',
    'retrain.enable (line 8): unknown key (did you mean "enabled"?)',
    'retrain.store.max_frame (line 10): unknown key (did you mean "max_frames"?)',
    'retrain.triggers.drift.facter (line 12): unknown key (did you mean "factor"?)',
    'retrain.promotion.margins.flaged (line 14): unknown key (did you mean "flagged"?)',
  ]);
});

Deno.test("durationMs() reads durations and passes milliseconds through", () => {
  assertEquals(
    [durationMs("6h"), durationMs("1h30m"), durationMs("500ms"), durationMs(250)],
    [21_600_000, 5_400_000, 500, 250],
  );
  assertEquals(durationMs("6 hours"), NaN);
});

Deno.test("parsePipeline() refuses the trigger values the retraining triggers cannot use", () => {
  // The triggers in src/retrain take these resolved and checked: the schema refuses them.
  const text = `${CAMERAS}retrain:
  triggers:
    interval: 0h
    daily_at: ["2pm", "25:00"]
    min_new_frames: 0
    drift: { window: 0, bound: 1 }
    cooldown: 0
`;
  assertEquals(issuesOf(text), [
    "retrain.triggers.interval (line 8): expected a duration such as 6h, 90m, 1h30m or 500ms " +
    "(or a number of milliseconds)",
    "retrain.triggers.daily_at[0] (line 9): expected a time HH:MM between 00:00 and 23:59",
    "retrain.triggers.daily_at[1] (line 9): expected a time HH:MM between 00:00 and 23:59",
    "retrain.triggers.min_new_frames (line 10): expected a positive integer",
    "retrain.triggers.drift.window (line 11): expected a positive integer",
    "retrain.triggers.cooldown (line 12): expected a duration such as 6h, 90m, 1h30m or 500ms " +
    "(or a number of milliseconds)",
  ]);
});

Deno.test("parsePipeline() resolves trigger durations to milliseconds and daily times to HH:MM", () => {
  const p = parsePipeline(
    `${CAMERAS}retrain:\n  triggers: { interval: 1234, daily_at: ["2:05", "14:30", "02:05"] }\n`,
    "r.yaml",
    { env: {} },
  );
  assertEquals([p.retrain.triggers.intervalMs, p.retrain.triggers.dailyAt], [1234, [
    "02:05",
    "14:30",
  ]]);
});
