/**
 * The service as a subprocess for process-level tests: `deno run -P=service main.ts run
 * <pipeline.yaml>` from the project root, its output kept in memory, killable with any
 * signal (SIGKILL as a power cut would), plus a look at the processes it left behind
 * (from `/proc`, Linux only).
 *
 * @example
 * ```ts
 * import { ServiceProcess } from "./service_process.ts";
 *
 * async function powerCut(pipelineFile: string): Promise<void> {
 *   await using service = ServiceProcess.start(pipelineFile);
 *   // ... wait for its MQTT messages ...
 *   const status = await service.kill("SIGKILL");
 * }
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The project root (where `main.ts` and `deno.json` are). */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** One process, as `/proc` shows it. */
export interface ProcessInfo {
  readonly pid: number;
  /** The parent's pid. */
  readonly ppid: number;
  /** The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z` for a zombie, ...). */
  readonly state: string;
  /** Its command line. */
  readonly argv: readonly string[];
}

/** Options of {@linkcode ServiceProcess.start}. */
export interface ServiceProcessOptions {
  /** More environment variables (e.g. `EFFICIENTAD_FAILPOINT`). */
  readonly env?: Readonly<Record<string, string>>;
  /** The permission flag. Default `-P=service`, the set `deno task start` uses. */
  readonly permissions?: string;
}

/**
 * Every process `/proc` lists now, zombies included; an empty list where there is no
 * `/proc`.
 */
export function listProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      out.push({
        pid: Number(e.name),
        ppid: Number(rest[1]),
        state: rest[0] ?? "?",
        argv: cmdline.split("\0").filter((a) => a !== ""),
      });
    } catch {
      // it exited while we looked
    }
  }
  return out;
}

/** The live (not zombie) processes whose command line contains every one of `needles`. */
export function findProcesses(...needles: string[]): ProcessInfo[] {
  return listProcesses().filter((p) =>
    p.state !== "Z" && needles.every((n) => p.argv.some((a) => a.includes(n)))
  );
}

/** The live descendants of `pid` (children, their children, ...), now. */
export function descendants(pid: number): ProcessInfo[] {
  const all = listProcesses();
  const found: ProcessInfo[] = [];
  let parents = new Set([pid]);
  while (parents.size > 0) {
    const next = all.filter((p) => parents.has(p.ppid));
    found.push(...next);
    parents = new Set(next.map((p) => p.pid));
  }
  return found.filter((p) => p.state !== "Z");
}

/** Sends SIGKILL to each pid that still runs (processes this test did not spawn itself). */
export function killAll(processes: readonly ProcessInfo[]): void {
  for (const p of processes) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * A `main.ts run <pipeline.yaml>` process owned by a test. Disposing it stops it (SIGTERM,
 * then SIGKILL after 20 s) and waits for it and its output.
 */
export class ServiceProcess implements AsyncDisposable {
  /** Its process id. */
  readonly pid: number;
  /** Settles when it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #output: string[] = [];
  readonly #drained: Promise<void>;
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    this.status = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.#drained = Promise.all([this.#drain(child.stdout), this.#drain(child.stderr)]).then(
      () => {},
    );
  }

  /** Starts the service on `pipelineFile`, from the project root. */
  static start(pipelineFile: string, options: ServiceProcessOptions = {}): ServiceProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", options.permissions ?? "-P=service", "main.ts", "run", pipelineFile],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    return new ServiceProcess(child);
  }

  /** Whether it has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Everything it wrote so far (stdout and stderr interleaved by arrival). */
  output(): string {
    return this.#output.join("");
  }

  /** Its live descendants now (ffmpeg, the trainer). */
  descendants(): ProcessInfo[] {
    return this.#exited ? [] : descendants(this.pid);
  }

  /** Sends `signal` (if it still runs) and waits for it to exit. */
  async kill(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // exited meanwhile
      }
    }
    const status = await this.status;
    await this.#drained;
    return status;
  }

  /** Stops it (SIGTERM, then SIGKILL after 20 s) and waits for its output to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, 20_000);
      try {
        await this.kill("SIGTERM");
      } finally {
        clearTimeout(timer);
      }
    }
    await this.status;
    await this.#drained;
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) this.#output.push(decoder.decode(chunk, { stream: true }));
    } catch {
      // the pipe broke: what was read is kept
    }
    this.#output.push(decoder.decode());
  }
}
