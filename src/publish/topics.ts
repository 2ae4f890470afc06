/**
 * The MQTT topic tree: every topic the service publishes, under one prefix.
 *
 * ```text
 * <prefix>/available          online | offline (retained; offline is the last will)
 * <prefix>/stats              pipeline statistics (JSON, periodic)
 * <prefix>/<camera>/status    camera state and counters (JSON, retained)
 * <prefix>/<camera>/score     one JSON message per processed frame
 * <prefix>/<camera>/map       the anomaly map as an 8-bit greyscale PNG
 * <prefix>/<camera>/event     anomaly events: start, update, end (JSON)
 * <prefix>/<camera>/model     the retraining lifecycle (JSON, retained)
 * <prefix>/<camera>/set/<cmd> commands in: mark, retrain, cancel, rollback
 * ```
 *
 * @module
 */

/** The topics of one deployment (one prefix). */
export interface Topics {
  /** `<prefix>/available`. */
  readonly available: string;
  /** `<prefix>/stats`. */
  readonly stats: string;
  /** `<prefix>/<camera>/status`. */
  status(camera: string): string;
  /** `<prefix>/<camera>/score`. */
  score(camera: string): string;
  /** `<prefix>/<camera>/map`. */
  map(camera: string): string;
  /** `<prefix>/<camera>/event`. */
  event(camera: string): string;
  /** `<prefix>/<camera>/model`. */
  model(camera: string): string;
  /** `<prefix>/<camera>/set/<command>`. */
  command(camera: string, command: string): string;
  /** `<prefix>/+/set/+`: the filter that the publisher subscribes to for commands. */
  readonly commandFilter: string;
  /**
   * The camera and command name of a topic under {@linkcode Topics.commandFilter}, or
   * `undefined` when the topic is not a command topic.
   */
  matchCommand(topic: string): { camera: string; command: string } | undefined;
}

/** Wildcards and NUL: never allowed in a published topic. */
function hasForbidden(s: string): boolean {
  return s.includes("+") || s.includes("#") || s.includes("\0");
}

/**
 * Checks a topic prefix: one or more non-empty levels without wildcards, not starting
 * with `$` (reserved for brokers) and without a leading or trailing `/`.
 *
 * @throws {RangeError} naming the prefix and the problem.
 */
export function checkPrefix(prefix: string): string {
  const problem = prefix === ""
    ? "it is empty"
    : hasForbidden(prefix)
    ? "it holds a wildcard (+ or #) or a NUL character"
    : prefix.startsWith("$")
    ? "topics starting with $ are reserved for the broker"
    : prefix.split("/").some((level) => level === "")
    ? "it has an empty level (a leading, trailing or double /)"
    : undefined;
  if (problem !== undefined) {
    throw new RangeError(`Cannot use MQTT topic prefix ${JSON.stringify(prefix)}: ${problem}`);
  }
  return prefix;
}

/**
 * Checks that a camera name is one topic level: not empty, no `/`, `+`, `#` or NUL.
 *
 * @throws {RangeError} naming the camera and the problem.
 */
export function checkCameraName(camera: string): string {
  if (camera === "" || camera.includes("/") || hasForbidden(camera)) {
    throw new RangeError(
      `Cannot publish for camera ${
        JSON.stringify(camera)
      }: a camera name must be one non-empty MQTT topic level without /, + or #`,
    );
  }
  return camera;
}

/**
 * The topic tree under `prefix` (a pipeline's `mqtt.topic_prefix`, resolved by the config).
 *
 * @throws {RangeError} when the prefix is not usable (see {@linkcode checkPrefix}); the
 * per-camera functions throw when the camera name is not (see {@linkcode checkCameraName}).
 *
 * @example
 * ```ts
 * const t = topics("factory/efficientad");
 * t.score("line-1"); // "factory/efficientad/line-1/score"
 * ```
 */
export function topics(prefix: string): Topics {
  checkPrefix(prefix);
  const camera = (name: string, leaf: string) => `${prefix}/${checkCameraName(name)}/${leaf}`;
  return {
    available: `${prefix}/available`,
    stats: `${prefix}/stats`,
    status: (name) => camera(name, "status"),
    score: (name) => camera(name, "score"),
    map: (name) => camera(name, "map"),
    event: (name) => camera(name, "event"),
    model: (name) => camera(name, "model"),
    command: (name, command) => camera(name, `set/${checkCameraName(command)}`),
    commandFilter: `${prefix}/+/set/+`,
    matchCommand: (topic) => {
      if (!topic.startsWith(`${prefix}/`)) return undefined;
      const levels = topic.slice(prefix.length + 1).split("/");
      const [name, set, command] = levels;
      if (levels.length !== 3 || set !== "set" || !name || !command) return undefined;
      return { camera: name, command };
    },
  };
}

/**
 * Whether `topic` matches the subscription `filter` (MQTT wildcards: `+` one level, `#`
 * the rest, a `$` topic only by a filter that names its first level).
 *
 * @example
 * ```ts
 * matchesFilter("efficientad/+/set/+", "efficientad/line-1/set/mark"); // true
 * matchesFilter("efficientad/#", "efficientad/stats"); // true
 * matchesFilter("efficientad/+", "efficientad/line-1/score"); // false
 * ```
 */
export function matchesFilter(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}
