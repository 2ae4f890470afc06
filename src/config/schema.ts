/**
 * The pipeline file's strict schema: what a user may write, with unknown keys rejected and
 * one plain message per key (`expected a positive number`). Defaults are not filled here
 * (see `resolve.ts`); rules that tie keys together are, so every error names a key.
 *
 * @module
 */
import { PRECISIONS } from "../core/frame.ts";
import { z } from "zod";
import { DEFAULTS } from "./defaults.ts";
import { classifySource } from "../core/source.ts";
import { isTlsScheme, MQTT_SCHEMES, MQTT_TLS_SCHEMES, mqttScheme } from "../core/mqtt_url.ts";

/** ONNX Runtime execution providers a pipeline may ask for. */
export const EXECUTION_PROVIDERS = ["tensorrt", "cuda", "webgpu", "cpu"] as const;

/** A camera name: topic-safe, lower case. */
export const CAMERA_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** The broker URL schemes, from `core/mqtt_url.ts` (the one list, shared with the publisher). */
export { MQTT_SCHEMES, MQTT_TLS_SCHEMES };

function list(values: readonly (string | number)[]): string {
  const items = values.map(String);
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
}

function numberWhere(message: string, ok: (n: number) => boolean) {
  return z.number({ error: message }).refine(ok, { error: message });
}

const positiveNumber = () => numberWhere("expected a positive number", (n) => n > 0);
const positiveInt = () =>
  numberWhere("expected a positive integer", (n) => Number.isSafeInteger(n) && n > 0);
const count = () =>
  numberWhere("expected an integer of at least 0", (n) => Number.isSafeInteger(n) && n >= 0);
const port = () =>
  numberWhere(
    "expected a port number from 0 to 65535",
    (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
  );
const unit = () => numberWhere("expected a number from 0 to 1", (n) => n >= 0 && n <= 1);
const bool = () => z.boolean({ error: "expected true or false" });
const text = () =>
  z.string({ error: "expected a string" }).refine((s) => s.trim() !== "", {
    error: "expected a non-empty string",
  });
function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `expected ${list(values)}` });
}
function mapping<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, {
    error: (issue) => (issue.code === "invalid_type" ? "expected a mapping" : undefined),
  });
}

/**
 * Runs a rule that ties keys together even when other keys of the same mapping are
 * invalid (so all errors come at once), as long as the keys it reads are valid.
 */
function whenValid(reads: readonly string[]): z.core.$ZodSuperRefineParams {
  return {
    when: (payload) =>
      payload.value !== null && typeof payload.value === "object" &&
      !Array.isArray(payload.value) &&
      !payload.issues.some((i) =>
        i.path !== undefined && i.path.length > 0
          ? reads.includes(String(i.path[0]))
          : i.code !== "unrecognized_keys"
      ),
  };
}

const imageSide = () =>
  numberWhere("expected an image size of at least 256", (n) => Number.isInteger(n) && n >= 256);

const roiSchema = mapping({ x: count(), y: count(), width: positiveInt(), height: positiveInt() });

const backoffSchema = mapping({
  initial_ms: positiveInt().optional(),
  max_ms: positiveInt().optional(),
})
  .superRefine((b, ctx) => {
    const initial = b.initial_ms ?? DEFAULTS.camera.backoff.initial_ms;
    const max = b.max_ms ?? DEFAULTS.camera.backoff.max_ms;
    if (max < initial) {
      ctx.addIssue({
        code: "custom",
        path: [b.max_ms !== undefined ? "max_ms" : "initial_ms"],
        message: `expected max_ms (${max}) to be at least initial_ms (${initial})`,
      });
    }
  }, whenValid(["initial_ms", "max_ms"]));

const hwaccelSchema = mapping({
  type: text().optional(),
  decoder: text().optional(),
  extra_args: z.array(
    z.string({ error: "expected a string" }).refine((a) => a !== "-i", {
      error: "expected an input option; -i (a second input) is not allowed",
    }),
    { error: "expected a list of strings" },
  ).optional(),
});

const cameraSchema = mapping({
  name: z.string({ error: "expected a string" }).refine((n) => CAMERA_NAME.test(n), {
    error: "expected a topic-safe name: lower-case letters, digits, _ and -, " +
      "starting with a letter or digit",
  }).refine((n) => n.length <= 64, { error: "expected at most 64 characters" }),
  url: z.string({ error: "expected a string" }).superRefine((u, ctx) => {
    const parsed = classifySource(u);
    if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.message });
  }),
  fps: positiveNumber().optional(),
  roi: roiSchema.optional(),
  rtsp_transport: oneOf(["tcp", "udp"]).optional(),
  loop: bool().optional(),
  stall_timeout_ms: positiveInt().optional(),
  backoff: backoffSchema.optional(),
  resize: oneOf(["auto", "exact", "ffmpeg"]).optional(),
  hwaccel: hwaccelSchema.optional(),
  enabled: bool().optional(),
  retrain: mapping({
    enabled: bool().optional(),
    store_key: z.string({ error: "expected a string" }).refine((k) => CAMERA_NAME.test(k), {
      error: "expected a path-safe key: lower-case letters, digits, _ and -, " +
        "starting with a letter or digit",
    }).optional(),
  }).optional(),
}).superRefine((camera, ctx) => {
  const parsed = classifySource(camera.url);
  if (!parsed.ok) return;
  const kind = parsed.source.kind;
  if (camera.rtsp_transport !== undefined && kind !== "rtsp") {
    ctx.addIssue({
      code: "custom",
      path: ["rtsp_transport"],
      message: `applies to rtsp:// sources only (this one is ${kind})`,
    });
  }
  if (camera.loop !== undefined && kind !== "file") {
    ctx.addIssue({
      code: "custom",
      path: ["loop"],
      message: `applies to file sources only (this one is ${kind})`,
    });
  }
}, whenValid(["url", "rtsp_transport", "loop"]));

const thresholdSchema = mapping({
  policy: oneOf(["model", "fixed"]).optional(),
  value: numberWhere("expected a finite number (a raw score)", Number.isFinite).optional(),
}).superRefine((t, ctx) => {
  const policy = t.policy ?? DEFAULTS.model.threshold.policy;
  if (policy === "fixed" && t.value === undefined) {
    ctx.addIssue({
      code: "custom",
      path: [t.policy !== undefined ? "policy" : "value"],
      message: "policy fixed requires value (a raw score)",
    });
  }
  if (policy === "model" && t.value !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["value"],
      message: "applies to policy fixed only (policy model takes the model's threshold)",
    });
  }
}, whenValid(["policy"]));

/** A list of execution providers in order of preference. */
const executionProviders = () =>
  z.array(oneOf(EXECUTION_PROVIDERS), { error: "expected a list" })
    .min(1, { error: "expected at least one execution provider" })
    .refine((ps) => new Set(ps).size === ps.length, { error: "expected no provider twice" });

const modelSchema = mapping({
  path: text().optional(),
  engine: oneOf(["onnx", "tfjs"]).optional(),
  execution_providers: executionProviders().optional(),
  threads: positiveInt().optional(),
  precision: oneOf(PRECISIONS).optional(),
  threshold: thresholdSchema.optional(),
  size: oneOf(["s", "m"]).optional(),
  padding: bool().optional(),
  pad_maps: bool().optional(),
  image_size: z.union([imageSide(), z.tuple([imageSide(), imageSide()])], {
    error: "expected an image size of at least 256: one number, or [height, width]",
  }).optional(),
}).superRefine((m, ctx) => {
  if ((m.engine ?? DEFAULTS.model.engine) !== "tfjs") return;
  for (const key of ["execution_providers", "threads"] as const) {
    if (m[key] !== undefined) {
      ctx.addIssue({ code: "custom", path: [key], message: "applies to engine onnx only" });
    }
  }
  if (m.precision !== undefined && m.precision !== "fp32") {
    ctx.addIssue({
      code: "custom",
      path: ["precision"],
      message: `${m.precision} needs engine onnx: the tfjs engine runs fp32 only`,
    });
  }
}, whenValid(["engine", "precision"]));

const batchingSchema = mapping({
  max_batch: positiveInt().optional(),
  max_wait_ms: count().optional(),
  queue_per_camera: positiveInt().optional(),
});

const brokerUrl = z.string({ error: "expected a string" }).superRefine((u, ctx) => {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `expected a broker URL such as mqtt://host:1883 (schemes: ${list(MQTT_SCHEMES)})`,
    });
    return;
  }
  if (mqttScheme(url) === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `unsupported scheme ${url.protocol}//: expected ${list(MQTT_SCHEMES)}`,
    });
  } else if (url.hostname === "") {
    ctx.addIssue({ code: "custom", message: "expected a host in the broker URL" });
  }
});

const topicPrefix = z.string({ error: "expected a string" }).refine(
  (p) => /^[^/+#$\s][^+#\s]*$/.test(p) && !p.endsWith("/") && !p.includes("//"),
  {
    error: "expected a topic prefix without wildcards (+, #), spaces, a leading $ " +
      "or empty levels, e.g. factory/line3",
  },
);

const tlsSchema = mapping({
  ca: text().optional(),
  cert: text().optional(),
  key: text().optional(),
  reject_unauthorized: bool().optional(),
}).superRefine((t, ctx) => {
  if (t.cert !== undefined && t.key === undefined) {
    ctx.addIssue({ code: "custom", path: ["cert"], message: "requires key (the client key file)" });
  }
  if (t.key !== undefined && t.cert === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["key"],
      message: "requires cert (the client certificate file)",
    });
  }
}, whenValid([]));

const mqttSchema = mapping({
  url: brokerUrl.optional(),
  client_id: text().optional(),
  topic_prefix: topicPrefix.optional(),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" })
    .optional(),
  retain_status: bool().optional(),
  tls: tlsSchema.optional(),
  username: text().optional(),
  password: z.string({ error: "expected a string" }).optional(),
  queue_limit: count().optional(),
  map: mapping({
    every_n: count().optional(),
    only_anomalous: bool().optional(),
    width: positiveInt().optional(),
    height: positiveInt().optional(),
  }).optional(),
  events: mapping({
    on_threshold: unit().optional(),
    off_threshold: unit().optional(),
    min_duration_ms: count().optional(),
    update_interval_ms: count().optional(),
  }).superRefine((e, ctx) => {
    const on = e.on_threshold ?? DEFAULTS.mqtt.events.on_threshold;
    const off = e.off_threshold ?? DEFAULTS.mqtt.events.off_threshold;
    if (off > on) {
      ctx.addIssue({
        code: "custom",
        path: [e.off_threshold !== undefined ? "off_threshold" : "on_threshold"],
        message: `expected off_threshold (${off}) to be at most on_threshold (${on})`,
      });
    }
  }, whenValid(["on_threshold", "off_threshold"])).optional(),
  stats_interval_ms: count().optional(),
  embedded: mapping({ host: text().optional(), port: port().optional() }).optional(),
}).superRefine((m, ctx) => {
  if (m.url !== undefined && m.embedded !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["embedded"],
      message: "applies only without url (the embedded broker starts when no url is given)",
    });
  }
  if (m.tls !== undefined) {
    const scheme = m.url === undefined ? undefined : mqttScheme(new URL(m.url));
    if (scheme === undefined || !isTlsScheme(scheme)) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: `applies to a TLS broker URL only (${
          list(MQTT_TLS_SCHEMES.map((s) => s + "://"))
        })`,
      });
    }
  }
  if (m.password !== undefined && m.username === undefined) {
    ctx.addIssue({ code: "custom", path: ["password"], message: "requires username" });
  }
}, whenValid(["url"]));

const httpSchema = mapping({
  enabled: bool().optional(),
  host: text().optional(),
  port: port().optional(),
});

/** A duration as written: `<n><unit>` parts (`ms`, `s`, `m`, `h`, `d`), e.g. `6h`, `1h30m`. */
export const DURATION = /^(\d+(\.\d+)?(ms|s|m|h|d))+$/;

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Milliseconds of a duration the schema accepted (a number is milliseconds already);
 * NaN for text that is not a duration.
 */
export function durationMs(value: string | number): number {
  if (typeof value === "number") return value;
  const text = value.trim().toLowerCase();
  if (!DURATION.test(text)) return NaN;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    ms += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? NaN);
  }
  return ms;
}

const durationMessage = "expected a duration such as 6h, 90m, 1h30m or 500ms " +
  "(or a number of milliseconds)";
const duration = () =>
  z.union([z.number(), z.string()], { error: durationMessage }).refine(
    (v) => durationMs(v) > 0 && Number.isFinite(durationMs(v)),
    { error: durationMessage },
  );

const clockTime = () =>
  z.string({ error: "expected a time HH:MM" }).refine((t) => {
    const m = /^(\d{1,2}):(\d{2})$/.exec(t.trim());
    return m !== null && Number(m[1]) <= 23 && Number(m[2]) <= 59;
  }, { error: "expected a time HH:MM between 00:00 and 23:59" });

const retrainSchema = mapping({
  enabled: bool().optional(),
  store: mapping({
    dir: text().optional(),
    max_frames: positiveInt().optional(),
    max_operator_frames: positiveInt().optional(),
    max_bytes: positiveInt().optional(),
    quantile: numberWhere("expected a number above 0, at most 1", (n) => n > 0 && n <= 1)
      .optional(),
    min_interval_ms: count().optional(),
    event_guard_ms: count().optional(),
    duplicate_threshold: numberWhere(
      "expected a number of at least 0",
      (n) => Number.isFinite(n) && n >= 0,
    ).optional(),
  }).optional(),
  triggers: mapping({
    interval: duration().optional(),
    daily_at: z.array(clockTime(), { error: "expected a list of times HH:MM" }).optional(),
    time_zone: oneOf(["utc", "local"]).optional(),
    min_new_frames: positiveInt().optional(),
    drift: mapping({
      window: positiveInt().optional(),
      bound: numberWhere("expected a finite number (a raw score)", Number.isFinite).optional(),
      factor: positiveNumber().refine(Number.isFinite, { error: "expected a positive number" })
        .optional(),
    }).superRefine((d, ctx) => {
      if (d.bound === undefined && d.factor === undefined) {
        ctx.addIssue({
          code: "custom",
          message: "expected bound, factor or both (what counts as drift)",
        });
      }
    }, whenValid(["bound", "factor"])).optional(),
    cooldown: duration().optional(),
  }).optional(),
  training: mapping({
    steps: positiveInt().optional(),
    engine: oneOf(["onnx", "tfjs"]).optional(),
    execution_providers: executionProviders().optional(),
    teacher: text().optional(),
    penalty_images: text().optional(),
    image_size: z.union([imageSide(), z.tuple([imageSide(), imageSide()])], {
      error: "expected an image size of at least 256: one number, or [height, width]",
    }).optional(),
  }).optional(),
  promotion: mapping({
    keep: positiveInt().optional(),
    margins: mapping({
      flagged: unit().optional(),
      median_normalized: unit().optional(),
      detected: unit().optional(),
      auroc: unit().optional(),
    }).optional(),
  }).optional(),
  bootstrap: mapping({ frames: positiveInt().optional() }).optional(),
});

const loggingSchema = mapping({ level: oneOf(["debug", "info", "warn", "error"]).optional() });

/** The whole pipeline file. */
export const pipelineSchema = mapping({
  version: z.literal(1, { error: "expected 1 (the only pipeline file version)" }).optional(),
  cameras: z.array(cameraSchema, { error: "expected a list of cameras" })
    .min(1, { error: "expected at least one camera" }),
  model: modelSchema.optional(),
  batching: batchingSchema.optional(),
  mqtt: mqttSchema.optional(),
  http: httpSchema.optional(),
  logging: loggingSchema.optional(),
  retrain: retrainSchema.optional(),
});

/**
 * A pipeline file as the user writes it (snake_case keys, everything but the cameras'
 * `name` and `url` optional). See `docs/pipeline.md`.
 */
export type PipelineFile = z.infer<typeof pipelineSchema>;

/** One camera as written in a pipeline file. */
export type CameraFile = PipelineFile["cameras"][number];

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional) s = s.unwrap();
    else if (s instanceof z.ZodArray) s = s.element;
    else return s;
  }
}

/**
 * The keys a mapping accepts at a path (numbers index lists), for "did you mean"; empty
 * when the path is not a mapping.
 */
export function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema = unwrap(pipelineSchema);
  for (const segment of path) {
    if (typeof segment === "number") continue;
    if (!(schema instanceof z.ZodObject)) return [];
    const child = (schema.shape as Record<string, z.core.$ZodType>)[String(segment)];
    if (child === undefined) return [];
    schema = unwrap(child);
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}
