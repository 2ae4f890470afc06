/**
 * A throwaway mosquitto broker for tests: its own temporary directory and config, a free
 * port on 127.0.0.1 (plain TCP or TLS), optionally a WebSocket listener (plain or TLS) on
 * a second one, and `stop()` / `restart()` on the same ports so tests can take the broker
 * away under a client and bring it back. {@linkcode makeTestCertificates} makes the TLS
 * files (a CA, a server and a client certificate) with openssl.
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

/**
 * Whether the installed mosquitto was built with WebSocket support (`protocol websockets`);
 * Debian's is.
 *
 * @throws {Error} under `CI=true` when mosquitto is there without it (see `components.ts`).
 */
export const HAS_MOSQUITTO_WEBSOCKETS: boolean = MOSQUITTO_BIN !== undefined &&
  component("mosquitto with WebSocket support", mosquittoHasWebsockets(), {
    why: "the installed mosquitto was built without `protocol websockets`",
  });

function mosquittoHasWebsockets(): boolean {
  if (MOSQUITTO_BIN === undefined) return false;
  try {
    const binary = Deno.readFileSync(MOSQUITTO_BIN);
    const needle = new TextEncoder().encode("Opening websockets listen socket");
    return indexOf(binary, needle) >= 0;
  } catch {
    return false;
  }
}

export { HAS_OPENSSL } from "./openssl.ts";

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first!); i >= 0; i = haystack.indexOf(first!, i + 1)) {
    let k = 1;
    while (k < needle.length && haystack[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}

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
  /**
   * A WebSocket listener too, on a second free port (see {@linkcode Mosquitto.wsUrl});
   * with `tls`, WebSocket over TLS. Needs {@linkcode HAS_MOSQUITTO_WEBSOCKETS}.
   */
  readonly websockets?: { readonly tls?: MosquittoTls };
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
  /** The port of the WebSocket listener, when there is one. */
  readonly wsPort: number | undefined;
  /** Its temporary directory (config, log, persistence, and room for a test's files). */
  readonly dir: string;
  readonly #configPath: string;
  readonly #logPath: string;
  readonly #startTimeoutMs: number;
  readonly #tls: boolean;
  readonly #wsTls: boolean;
  #child: Deno.ChildProcess | undefined;

  private constructor(port: number, dir: string, options: MosquittoOptions) {
    this.port = port;
    this.dir = dir;
    this.#configPath = join(dir, "mosquitto.conf");
    this.#logPath = join(dir, "mosquitto.log");
    this.#startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.#tls = options.tls !== undefined;
    this.wsPort = options.websockets !== undefined ? freePort() : undefined;
    this.#wsTls = options.websockets?.tls !== undefined;
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

  /**
   * `ws://127.0.0.1:<wsPort>` (or `wss://` with TLS), when there is a WebSocket listener.
   * mosquitto takes any WebSocket path.
   */
  get wsUrl(): string | undefined {
    if (this.wsPort === undefined) return undefined;
    return `${this.#wsTls ? "wss" : "ws"}://${this.host}:${this.wsPort}`;
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
    // TLS settings belong to the listener line above them.
    lines.push(`listener ${this.port} ${this.host}`, ...tlsLines(options.tls));
    if (this.wsPort !== undefined) {
      // mosquitto 2.0 starts no WebSocket listener without another one: keep the main one.
      lines.push(
        `listener ${this.wsPort} ${this.host}`,
        "protocol websockets",
        ...tlsLines(options.websockets?.tls),
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
      if (
        await accepts(this.host, this.port) &&
        (this.wsPort === undefined || await accepts(this.host, this.wsPort))
      ) {
        return;
      }
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

function tlsLines(tls: MosquittoTls | undefined): string[] {
  if (tls === undefined) return [];
  return [
    `cafile ${tls.cafile}`,
    `certfile ${tls.certfile}`,
    `keyfile ${tls.keyfile}`,
    `require_certificate ${tls.requireCertificate ? "true" : "false"}`,
  ];
}

/** The files {@linkcode makeTestCertificates} writes, as paths. */
export interface TestCertificates {
  /** `ca.crt`: the throwaway CA. */
  readonly ca: string;
  /** `server.crt` / `server.key`: for 127.0.0.1 and localhost. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** `client.crt` / `client.key`: a client certificate signed by the CA. */
  readonly clientCert: string;
  readonly clientKey: string;
}

/**
 * Writes a throwaway CA, a server certificate for 127.0.0.1 and a client certificate
 * (EC P-256, valid two days) into `dir`. Needs {@linkcode HAS_OPENSSL}.
 *
 * @throws {Error} when openssl fails (its stderr in the message).
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const runOpenssl = (args: readonly string[]) => runCommand("openssl", args, { cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const days = ["-days", "2"];
  await runOpenssl([
    "req",
    "-x509",
    ...ec,
    ...["-keyout", "ca.key", "-out", "ca.crt", ...days, "-subj", "/CN=efficientad test CA"],
  ]);
  for (const [name, san] of [["server", "IP:127.0.0.1,DNS:localhost"], ["client", "DNS:client"]]) {
    await runOpenssl([
      "req",
      ...ec,
      ...["-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`],
    ]);
    await Deno.writeTextFile(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    await runOpenssl([
      ...["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key"],
      ...["-CAcreateserial", "-out", `${name}.crt`, ...days, "-extfile", `${name}.ext`],
    ]);
  }
  return {
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
  };
}

/**
 * Runs a command in `options.cwd` and waits for it.
 *
 * @throws {Error} "Cannot run <cmd> ...: <stderr>" when it fails.
 */
export async function runCommand(
  cmd: string,
  args: readonly string[],
  options: { readonly cwd: string },
): Promise<void> {
  const { cwd } = options;
  const out = await new Deno.Command(cmd, {
    args: [...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`Cannot run ${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
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
