/**
 * A throwaway mosquitto broker for tests: its own temporary directory and config, a free
 * port on 127.0.0.1, and `stop()` / `restart()` on the same port so tests can take the
 * broker away under a client and bring it back.
 *
 * @example
 * ```ts
 * import { Mosquitto } from "./mosquitto.ts";
 *
 * async function brokerGoesAway(): Promise<void> {
 *   await using broker = await Mosquitto.start();
 *   // connect to broker.url ...
 *   await broker.restart();
 * }
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { component } from "./components.ts";

/** The path of the mosquitto binary, or `undefined` when it is not installed. */
export const MOSQUITTO_BIN: string | undefined = findBinary("mosquitto", "/usr/sbin/mosquitto");

/** The path of `mosquitto_passwd`, or `undefined` when it is not installed. */
export const MOSQUITTO_PASSWD_BIN: string | undefined = findBinary(
  "mosquitto_passwd",
  "/usr/bin/mosquitto_passwd",
);

/**
 * Whether the mosquitto binary is installed: tests that need it pass
 * `ignore: !HAS_MOSQUITTO` and are skipped with a message without it.
 *
 * @throws {Error} under `CI=true` when it is missing (see `components.ts`).
 */
export const HAS_MOSQUITTO: boolean = component("mosquitto", MOSQUITTO_BIN !== undefined, {
  why: "no mosquitto binary on PATH or at /usr/sbin/mosquitto",
});

/**
 * Whether `mosquitto_passwd` is installed (Debian's `mosquitto` package ships it), for the
 * tests of password files.
 *
 * @throws {Error} under `CI=true` when it is missing (see `components.ts`).
 */
export const HAS_MOSQUITTO_PASSWD: boolean = component(
  "mosquitto_passwd",
  MOSQUITTO_PASSWD_BIN !== undefined,
  { why: "no mosquitto_passwd on PATH or at /usr/bin/mosquitto_passwd" },
);

function findBinary(name: string, fallback: string): string | undefined {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  for (const p of [...dirs.map((d) => join(d, name)), fallback]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** TLS files of a listener (paths). */
export interface MosquittoTls {
  readonly cafile: string;
  readonly certfile: string;
  readonly keyfile: string;
  /** Ask clients for a certificate signed by `cafile`. Default false. */
  readonly requireCertificate?: boolean;
}

/** Options of {@linkcode Mosquitto.start}. */
export interface MosquittoOptions {
  /** The port; default a free one picked at start. */
  readonly port?: number;
  /** Keep sessions and queued messages across `restart()` (mosquitto's `persistence`). Default true. */
  readonly persistence?: boolean;
  /** A TLS listener instead of plain TCP. */
  readonly tls?: MosquittoTls;
  /** A `mosquitto_passwd` file; anonymous clients are refused when it is set. */
  readonly passwordFile?: string;
  /** Extra config lines, appended as they are. */
  readonly extraConfig?: readonly string[];
  /** How long `start()` and `restart()` wait for the port to accept connections. Default 10 000 ms. */
  readonly startTimeoutMs?: number;
}

/**
 * A mosquitto process owned by a test. Disposing it stops the process and removes its
 * temporary directory.
 */
export class Mosquitto implements AsyncDisposable {
  /** The host it listens on: always 127.0.0.1. */
  readonly host = "127.0.0.1";
  /** The port it listens on, the same across restarts. */
  readonly port: number;
  /** Its temporary directory (config, log, persistence, and room for a test's files). */
  readonly dir: string;
  readonly #configPath: string;
  readonly #logPath: string;
  readonly #startTimeoutMs: number;
  readonly #tls: boolean;
  #child: Deno.ChildProcess | undefined;

  private constructor(port: number, dir: string, options: MosquittoOptions) {
    this.port = port;
    this.dir = dir;
    this.#configPath = join(dir, "mosquitto.conf");
    this.#logPath = join(dir, "mosquitto.log");
    this.#startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.#tls = options.tls !== undefined;
    Deno.writeTextFileSync(this.#configPath, this.#config(options));
  }

  /**
   * Starts mosquitto on a free port (or `options.port`) and waits until it accepts
   * connections.
   *
   * @throws {Error} when mosquitto exits or does not listen in time; the message holds the
   * end of its log.
   */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = await Deno.makeTempDir({ prefix: "mosquitto-" });
    const broker = new Mosquitto(options.port ?? freePort(), dir, options);
    try {
      await broker.#spawn();
    } catch (e) {
      await broker[Symbol.asyncDispose]();
      throw e;
    }
    return broker;
  }

  /** `mqtt://127.0.0.1:<port>` (or `mqtts://` with TLS). */
  get url(): string {
    return `${this.#tls ? "mqtts" : "mqtt"}://${this.host}:${this.port}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** The broker's log so far (for failure messages). */
  log(): string {
    try {
      return Deno.readTextFileSync(this.#logPath);
    } catch {
      return "";
    }
  }

  /**
   * Stops the broker. `SIGTERM` (the default) lets it save its persistence file;
   * `SIGKILL` does not. Does nothing when it is not running.
   */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
    await child.status;
  }

  /** Stops the broker if it runs, then starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  /** Starts the broker again after `stop()`, on the same port. */
  async resume(): Promise<void> {
    if (this.#child === undefined) await this.#spawn();
  }

  /** Stops the broker and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #config(options: MosquittoOptions): string {
    const lines = [
      `listener ${this.port} ${this.host}`,
      // Running as root, mosquitto would switch to the `mosquitto` user and lose access to
      // the temporary directory; as another user this line has no effect.
      "user root",
      `log_dest file ${this.#logPath}`,
      "log_type all",
      "connection_messages true",
    ];
    if (options.persistence ?? true) {
      lines.push("persistence true", `persistence_location ${this.dir}/`, "autosave_interval 1");
    }
    if (options.passwordFile !== undefined) {
      lines.push("allow_anonymous false", `password_file ${options.passwordFile}`);
    } else {
      lines.push("allow_anonymous true");
    }
    if (options.tls !== undefined) {
      lines.push(
        `cafile ${options.tls.cafile}`,
        `certfile ${options.tls.certfile}`,
        `keyfile ${options.tls.keyfile}`,
        `require_certificate ${options.tls.requireCertificate ? "true" : "false"}`,
      );
    }
    lines.push(...(options.extraConfig ?? []));
    return lines.join("\n") + "\n";
  }

  async #spawn(): Promise<void> {
    if (MOSQUITTO_BIN === undefined) throw new Error("Cannot start mosquitto: it is not installed");
    const child = new Deno.Command(MOSQUITTO_BIN, {
      args: ["-c", this.#configPath],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + this.#startTimeoutMs;
    while (true) {
      if (exited) {
        this.#child = undefined;
        throw new Error(`Cannot start mosquitto: it exited\n${this.log().slice(-2000)}`);
      }
      if (await accepts(this.host, this.port)) return;
      if (Date.now() > deadline) {
        await this.stop("SIGKILL");
        throw new Error(
          `Cannot start mosquitto: port ${this.port} did not accept connections in ${this.#startTimeoutMs} ms\n${
            this.log().slice(-2000)
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Whether something accepts TCP connections on host:port. */
export async function accepts(hostname: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
