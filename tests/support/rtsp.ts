/**
 * A real RTSP server for tests: `tools/rtsp_server.py` (GStreamer's RTSP server) as a
 * child process on a free local port, started and stopped as an `AsyncDisposable`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { component } from "./components.ts";

const SCRIPT = fileURLToPath(new URL("../../tools/rtsp_server.py", import.meta.url));

/** Debian's python, which has the GStreamer bindings (a pyenv python first on PATH does not). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** Options of {@linkcode RtspTestServer.start}. */
export interface RtspTestServerOptions {
  /** Mount points, served as `/<name>`. Default `["cam1"]`. */
  readonly mounts?: readonly string[];
  /** The port. Default: a free one. */
  readonly port?: number;
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  /** Require RTSP basic auth with these credentials (embedded in {@linkcode RtspTestServer.url}). */
  readonly user?: string;
  readonly password?: string;
  /** How long to wait for the READY line. Default 15000 ms. */
  readonly readyTimeoutMs?: number;
}

async function gstRtspServerImports(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(SYSTEM_PYTHON, {
      args: [
        "-c",
        "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Whether this machine can run the server (Debian's python with GstRtspServer), checked
 * once when this module loads: tests that need it pass `ignore: !HAS_RTSP_SERVER` and are
 * skipped with a message without it.
 *
 * @throws {Error} under `CI=true` when it cannot (see `components.ts`).
 */
export const HAS_RTSP_SERVER: boolean = component(
  "the GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0)",
  await gstRtspServerImports(),
  { why: `${SYSTEM_PYTHON} cannot import gi.repository.GstRtspServer` },
);

/** {@linkcode HAS_RTSP_SERVER}, for callers that await it. */
export function rtspServerAvailable(): Promise<boolean> {
  return Promise.resolve(HAS_RTSP_SERVER);
}

/** A port nobody listens on right now (it could be taken again before use; fine for tests). */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * The RTSP test server. {@linkcode RtspTestServer.stop} kills it (SIGKILL, as when a camera
 * loses power: clients see their connection drop), {@linkcode RtspTestServer.restart}
 * brings it back on the same port, {@linkcode RtspTestServer.pause} /
 * {@linkcode RtspTestServer.resume} freeze it (SIGSTOP / SIGCONT: connections stay open but
 * go silent). Disposing stops it and waits for the process and its pipes.
 *
 * @example
 * ```ts
 * import { RtspTestServer } from "./rtsp.ts";
 *
 * async function twoCameras(): Promise<void> {
 *   await using server = await RtspTestServer.start({ mounts: ["cam1", "cam2"] });
 *   server.url("cam1"); // rtsp://127.0.0.1:<port>/cam1
 * }
 * ```
 */
export class RtspTestServer implements AsyncDisposable {
  /** The TCP port, the same across restarts. */
  readonly port: number;
  readonly #args: string[];
  readonly #options: RtspTestServerOptions;
  #child: Deno.ChildProcess | undefined;
  /** Resolves once both pipes of the running process have been read to their end. */
  #pipesDone: Promise<unknown> | undefined;

  private constructor(port: number, options: RtspTestServerOptions) {
    this.port = port;
    this.#options = options;
    const args = [
      SCRIPT,
      "--port",
      String(port),
      "--mounts",
      (options.mounts ?? ["cam1"]).join(","),
    ];
    if (options.width !== undefined) args.push("--width", String(options.width));
    if (options.height !== undefined) args.push("--height", String(options.height));
    if (options.fps !== undefined) args.push("--fps", String(options.fps));
    if (options.user !== undefined) args.push("--user", options.user);
    if (options.password !== undefined) args.push("--password", options.password);
    this.#args = args;
  }

  /**
   * Starts the server and resolves once it listens.
   *
   * @throws {Error} when it exits or prints no READY line in time (the message holds its
   * stderr).
   */
  static async start(options: RtspTestServerOptions = {}): Promise<RtspTestServer> {
    const server = new RtspTestServer(options.port ?? freePort(), options);
    await server.#launch();
    return server;
  }

  /** Whether the server process is running (possibly paused). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** The process id while running. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** `rtsp://[user:password@]127.0.0.1:<port>/<mount>`. */
  url(mount: string): string {
    const { user, password } = this.#options;
    const auth = user !== undefined
      ? `${encodeURIComponent(user)}:${encodeURIComponent(password ?? "")}@`
      : "";
    return `rtsp://${auth}127.0.0.1:${this.port}/${mount}`;
  }

  /** Kills the server (SIGKILL) and waits until it is gone. No-op when not running. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGCONT"); // a paused process must run to die cleanly
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
    await this.#pipesDone;
    this.#pipesDone = undefined;
  }

  /** Starts the server again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#launch();
  }

  /** Freezes the server (SIGSTOP): clients keep their connections, but nothing arrives. */
  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** Unfreezes a paused server (SIGCONT). */
  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  /** Stops the server. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #launch(): Promise<void> {
    const timeoutMs = this.#options.readyTimeoutMs ?? 15_000;
    // The port may still be in TIME_WAIT or held by the old process's sockets for a moment
    // after a stop: retry a bind failure (exit status 2) briefly.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await this.#launchOnce(Math.max(deadline - Date.now(), 1));
      if (result === "ready") return;
      if (result.code !== 2 || Date.now() >= deadline) {
        throw new Error(`Cannot start the RTSP test server on port ${this.port}: ${result.why}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async #launchOnce(timeoutMs: number): Promise<"ready" | { code: number; why: string }> {
    const child = new Deno.Command(SYSTEM_PYTHON, {
      args: this.#args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text().catch(() => "");
    const stdout = child.stdout.pipeThrough(new TextDecoderStream());
    const reader = stdout.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const ready = (async () => {
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return "exited" as const;
        text += value;
        if (/^READY /m.test(text)) return "ready" as const;
      }
    })();
    const outcome = await Promise.race([ready, timeout]);
    clearTimeout(timer);
    if (outcome === "ready") {
      reader.releaseLock();
      this.#child = child;
      // Drain stdout in the background so the server never blocks on a full pipe.
      const drained = stdout.pipeTo(new WritableStream()).catch(() => {});
      this.#pipesDone = Promise.all([drained, stderr]);
      await waitForPort(this.port, 5000);
      return "ready";
    }
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    const status = await child.status;
    await reader.cancel().catch(() => {});
    await ready.catch(() => {});
    const why = (await stderr).trim() ||
      (outcome === "timeout" ? `no READY line in ${timeoutMs} ms` : "it exited");
    return { code: status.code, why };
  }
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (e) {
      if (Date.now() >= deadline) {
        throw new Error(`Cannot reach the RTSP test server on port ${port}: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
