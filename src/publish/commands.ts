/**
 * Commands in over MQTT: `<prefix>/<camera>/set/<command>`, parsed into
 * {@linkcode Command} values for the retraining code (see `docs/mqtt.md`).
 *
 * ```text
 * set/mark      {"label": "normal" | "anomalous", "seq"?: <frame seq>}
 * set/retrain   empty, a plain-text reason, or {"reason": "..."}
 * set/cancel    payload ignored
 * set/rollback  payload ignored
 * ```
 *
 * @module
 */

/** The command names, the last level of `<prefix>/<camera>/set/<command>`. */
export const COMMAND_NAMES = ["mark", "retrain", "cancel", "rollback"] as const;

/** One of {@linkcode COMMAND_NAMES}. */
export type CommandName = typeof COMMAND_NAMES[number];

/** The most characters kept of a `retrain` reason. */
export const MAX_REASON_LENGTH = 200;

/**
 * A parsed command. `mark` labels a frame for the normal-frame store and validation: the
 * frame `seq`, or the camera's current (latest) frame when `seq` is absent.
 */
export type Command =
  | {
    readonly camera: string;
    readonly command: "mark";
    readonly label: "normal" | "anomalous";
    readonly seq?: number;
  }
  | { readonly camera: string; readonly command: "retrain"; readonly reason?: string }
  | { readonly camera: string; readonly command: "cancel" }
  | { readonly camera: string; readonly command: "rollback" };

/**
 * Parses the payload of a command topic.
 *
 * @throws {TypeError} "Cannot parse <command> command for camera <camera>: <reason>" when
 * the command is unknown or its payload is malformed.
 *
 * @example
 * ```ts
 * parseCommand("line-1", "mark", new TextEncoder().encode('{"label":"normal"}'));
 * // { camera: "line-1", command: "mark", label: "normal" }
 * ```
 */
export function parseCommand(camera: string, command: string, payload: Uint8Array): Command {
  const fail = (reason: string): never => {
    throw new TypeError(
      `Cannot parse ${JSON.stringify(command)} command for camera ${
        JSON.stringify(camera)
      }: ${reason}`,
    );
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload).trim();
  } catch {
    return fail("the payload is not UTF-8");
  }
  switch (command) {
    case "mark": {
      const body = parseObject(text, fail);
      const unknown = Object.keys(body).filter((k) => k !== "label" && k !== "seq");
      if (unknown.length > 0) fail(`unknown key ${JSON.stringify(unknown[0])}`);
      const { label, seq } = body;
      if (label !== "normal" && label !== "anomalous") {
        fail('"label" must be "normal" or "anomalous"');
      }
      if (seq !== undefined && (!Number.isSafeInteger(seq) || (seq as number) < 0)) {
        fail('"seq" must be a whole number >= 0');
      }
      return {
        camera,
        command,
        label: label as "normal" | "anomalous",
        ...(seq !== undefined ? { seq: seq as number } : {}),
      };
    }
    case "retrain": {
      let reason: string | undefined = text === "" ? undefined : text;
      if (text.startsWith("{")) {
        const body = parseObject(text, fail);
        const unknown = Object.keys(body).filter((k) => k !== "reason");
        if (unknown.length > 0) fail(`unknown key ${JSON.stringify(unknown[0])}`);
        if (body.reason !== undefined && typeof body.reason !== "string") {
          fail('"reason" must be a string');
        }
        reason = body.reason === "" ? undefined : body.reason as string | undefined;
      }
      if (reason !== undefined && reason.length > MAX_REASON_LENGTH) {
        reason = reason.slice(0, MAX_REASON_LENGTH);
      }
      return { camera, command, ...(reason !== undefined ? { reason } : {}) };
    }
    case "cancel":
    case "rollback":
      return { camera, command };
    default:
      return fail(`unknown command (expected ${COMMAND_NAMES.join(", ")})`);
  }
}

function parseObject(text: string, fail: (reason: string) => never): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail("the payload is not JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return fail("the payload is not a JSON object");
  }
  return body as Record<string, unknown>;
}
