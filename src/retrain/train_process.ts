/**
 * One training run as a subprocess at lower priority, outside the inference path: argv is
 * built as data (no shell), progress is parsed from its output lines, and it can be
 * cancelled (SIGTERM, then SIGKILL after a grace period).
 *
 * @module
 */

/** Progress parsed from a line such as `info  step 40/250 loss 7.3454 ... ETA 7m34s`. */
export interface TrainProgress {
  /** Steps done. */
  readonly step: number;
  /** Steps in the run. */
  readonly total: number;
  /** The total loss at that step, when the line has one. */
  readonly loss?: number;
  /** The trainer's estimate of the time left, as written (`"7m34s"`), when the line has one. */
  readonly eta?: string;
}

/** How a run ended. Never describes a run that is still going. */
export interface TrainResult {
  /** True when the trainer exited with code 0 and was not cancelled. */
  readonly ok: boolean;
  /** The exit code; null when it was killed by a signal or could not be started. */
  readonly code: number | null;
  /** The signal that killed it, if one did. */
  readonly signal?: string;
  /** Where the trainer was told to write the model. */
  readonly outDir: string;
  /** True when {@linkcode TrainProcess.cancel} (or the abort signal) stopped it. */
  readonly cancelled: boolean;
  /** Wall time from spawn to exit. */
  readonly durationMs: number;
  /** The last lines the trainer wrote (stdout and stderr together), oldest first. */
  readonly lastLines: readonly string[];
  /** The last progress seen, if any. */
  readonly progress?: TrainProgress;
  /** Why it failed, in one line ("Cannot train: ..."); absent when `ok`. */
  readonly error?: string;
}

/** Options of {@linkcode TrainProcess} and {@linkcode trainArgv}. */
export interface TrainProcessOptions {
  /** The folder of normal images (`--data`). */
  readonly dataDir: string;
  /** Where the model is written (`--out`). */
  readonly outDir: string;
  /** Training steps (`--steps`), when set. */
  readonly steps?: number;
  /** More arguments after `--data D --out O [--steps N]`, e.g. `["--seed", "0"]`. */
  readonly extraArgs?: readonly string[];
  /**
   * The trainer's argv before the flags: executable first. Default
   * `[Deno.execPath(), "run", "-P=cli", "main.ts", "train"]` (run from `cwd`).
   */
  readonly command?: readonly string[];
  /**
   * Run under `nice -n <n>`: a number is the niceness, `true` means 10, `false` runs it
   * plainly. Default: 10 when `nicePath` exists, else plain.
   */
  readonly nice?: boolean | number;
  /** The `nice` executable. Default `/usr/bin/nice`. */
  readonly nicePath?: string;
  /** The trainer's working directory. Default: this process's. */
  readonly cwd?: string;
  /** More environment variables for the trainer. */
  readonly env?: Readonly<Record<string, string>>;
  /** After SIGTERM, how long the trainer has to exit before SIGKILL. Default 5000 ms. */
  readonly killGraceMs?: number;
  /** How many output lines to keep. Default 50. */
  readonly keepLines?: number;
  /** Called with each progress line parsed; exceptions it throws are ignored. */
  readonly onProgress?: (progress: TrainProgress) => void;
  /** Aborting it cancels the run. */
  readonly signal?: AbortSignal;
}

/** The default trainer: this project's `train` command. */
export function defaultTrainCommand(): string[] {
  return [Deno.execPath(), "run", "-P=cli", "main.ts", "train", "--exit-with-parent"];
}

function niceExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The full argv of a run: `[nice, -n, N,] ...command, --data, D, --out, O, [--steps, N,]
 * ...extraArgs`. Checks whether `nice` exists when `nice` is left to its default.
 *
 * @throws {RangeError} when `command` is empty or `steps` is not a positive integer.
 */
export function trainArgv(options: TrainProcessOptions): string[] {
  const command = options.command ?? defaultTrainCommand();
  if (command.length === 0) throw new RangeError("Cannot train: the command is empty");
  const steps = options.steps;
  if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) {
    throw new RangeError(`Cannot train: steps must be a positive integer, got ${steps}`);
  }
  const nicePath = options.nicePath ?? "/usr/bin/nice";
  const nice = options.nice ?? (niceExists(nicePath) ? 10 : false);
  const prefix = nice === false ? [] : [nicePath, "-n", String(nice === true ? 10 : nice)];
  return [
    ...prefix,
    ...command,
    "--data",
    options.dataDir,
    "--out",
    options.outDir,
    ...(steps !== undefined ? ["--steps", String(steps)] : []),
    ...(options.extraArgs ?? []),
  ];
}

/** The trainer's ETA (`"7m34s"`, `"1h02m"`, `"12s"`) in milliseconds; undefined if unreadable. */
export function etaMilliseconds(eta: string | undefined): number | undefined {
  const m = eta === undefined || eta === ""
    ? null
    : /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(eta);
  if (m === null) return undefined;
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

/**
 * Parses a progress line (`step 40/250 loss 7.3454 ... ETA 7m34s`, with or without a log
 * level in front); undefined for any other line.
 */
export function parseProgress(line: string): TrainProgress | undefined {
  const m = /\bstep (\d+)\/(\d+)\b/.exec(line);
  if (!m) return undefined;
  const loss = /\bloss (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|Infinity)\b/i.exec(line);
  const eta = /\bETA (\S+)/.exec(line);
  return {
    step: Number(m[1]),
    total: Number(m[2]),
    ...(loss ? { loss: Number(loss[1]) } : {}),
    ...(eta ? { eta: eta[1]! } : {}),
  };
}

/**
 * A running training subprocess. It starts on construction; {@linkcode TrainProcess.result}
 * settles when it has exited and both pipes are drained, and never rejects (a trainer that
 * cannot be started is a failed result). Disposing cancels it and waits.
 *
 * @example
 * ```ts
 * import { TrainProcess } from "./train_process.ts";
 *
 * async function train(promote: (dir: string) => Promise<void>): Promise<void> {
 *   await using run = new TrainProcess({ dataDir: "store/cam1", outDir: "models/cam1/next", steps: 2000 });
 *   const result = await run.result;
 *   if (result.ok) await promote(result.outDir);
 * }
 * ```
 */
export class TrainProcess implements AsyncDisposable {
  /** The argv it runs (see {@linkcode trainArgv}). */
  readonly argv: readonly string[];
  /** How the run ended. Never rejects. */
  readonly result: Promise<TrainResult>;

  readonly #killGraceMs: number;
  readonly #keep: number;
  readonly #lines: string[] = [];
  readonly #onProgress: ((p: TrainProgress) => void) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => void this.cancel();
  #child: Deno.ChildProcess | undefined;
  #progress: TrainProgress | undefined;
  #cancelled = false;
  #exited = false;
  #killTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Starts the trainer.
   *
   * @throws {RangeError} as {@linkcode trainArgv}, or on a negative grace or line count.
   */
  constructor(options: TrainProcessOptions) {
    this.argv = trainArgv(options);
    this.#killGraceMs = options.killGraceMs ?? 5000;
    this.#keep = options.keepLines ?? 50;
    if (!(this.#killGraceMs >= 0) || !(Number.isInteger(this.#keep) && this.#keep > 0)) {
      throw new RangeError("Cannot train: killGraceMs must be >= 0 and keepLines positive");
    }
    this.#onProgress = options.onProgress;
    this.#signal = options.signal;
    this.result = this.#run(options);
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (this.#signal?.aborted) void this.cancel();
  }

  /** The last progress parsed, if any. */
  progress(): TrainProgress | undefined {
    return this.#progress;
  }

  /** The last output lines, oldest first (a copy). */
  lastLines(): string[] {
    return [...this.#lines];
  }

  /**
   * Cancels the run: SIGTERM now, SIGKILL after the grace period if it is still running;
   * resolves with the result once it has exited. Idempotent; never rejects.
   */
  cancel(): Promise<TrainResult> {
    if (!this.#cancelled && !this.#exited) {
      this.#cancelled = true;
      this.#kill("SIGTERM");
      this.#killTimer = setTimeout(() => this.#kill("SIGKILL"), this.#killGraceMs);
    }
    return this.result;
  }

  /** Cancels the run (if still going) and waits for it to exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.cancel();
  }

  #kill(signal: Deno.Signal): void {
    try {
      this.#child?.kill(signal);
    } catch {
      // already exited
    }
  }

  #push(line: string): void {
    if (line.trim() === "") return;
    this.#lines.push(line);
    if (this.#lines.length > this.#keep) this.#lines.shift();
    const p = parseProgress(line);
    if (!p) return;
    this.#progress = p;
    try {
      this.#onProgress?.(p);
    } catch {
      // a hook's failure is not the trainer's
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    const write = (text: string) => {
      const parts = (partial + text).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? "";
      for (const line of parts) this.#push(line);
    };
    try {
      for await (const chunk of stream) write(decoder.decode(chunk, { stream: true }));
    } catch {
      // the pipe broke: what was read is kept
    }
    write(decoder.decode());
    this.#push(partial);
  }

  async #run(options: TrainProcessOptions): Promise<TrainResult> {
    const started = performance.now();
    const [exe, ...args] = this.argv;
    const base = { outDir: options.outDir, lastLines: [] as string[] };
    try {
      this.#child = new Deno.Command(exe!, {
        args,
        // Held open, never written: the trainer's stdin closes when this process dies, and a
        // trainer started with --exit-with-parent then stops instead of running orphaned.
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        ...(options.env !== undefined ? { env: { ...options.env } } : {}),
      }).spawn();
    } catch (e) {
      this.#exited = true;
      this.#signal?.removeEventListener("abort", this.#onAbort);
      return {
        ...base,
        ok: false,
        code: null,
        cancelled: this.#cancelled,
        durationMs: performance.now() - started,
        error: `Cannot train: cannot start ${exe}: ${e instanceof Error ? e.message : String(e)}`,
      };
    }
    const child = this.#child;
    if (this.#cancelled) this.#kill("SIGTERM");
    const [status] = await Promise.all([
      child.status,
      this.#pump(child.stdout),
      this.#pump(child.stderr),
    ]);
    await child.stdin.close().catch(() => {});
    this.#exited = true;
    clearTimeout(this.#killTimer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const cancelled = this.#cancelled;
    const ok = status.success && !cancelled;
    const lastLines = this.lastLines();
    const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
    const last = lastLines.at(-1);
    return {
      ok,
      code: status.signal ? null : status.code,
      ...(status.signal ? { signal: status.signal } : {}),
      outDir: options.outDir,
      cancelled,
      durationMs: performance.now() - started,
      lastLines,
      ...(this.#progress ? { progress: this.#progress } : {}),
      ...(ok ? {} : {
        error: cancelled
          ? "Cannot train: cancelled"
          : `Cannot train: the trainer exited with ${how}${last ? `: ${last}` : ""}`,
      }),
    };
  }
}
