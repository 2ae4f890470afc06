/**
 * One training run as a subprocess at lower priority, outside the inference path: argv is
 * built as data (no shell), progress is read from the JSON lines it writes on standard
 * output (`train --progress-json`, {@linkcode TrainEvent}), and it can be cancelled
 * (SIGTERM, then SIGKILL after a grace period). Its other output lines are kept as they
 * are, for the error message and the logs.
 *
 * @module
 */
import { assertPositiveInteger } from "../core/check.ts";
import { errorMessage } from "../core/errors.ts";
import {
  parseTrainEvent,
  type TrainDone,
  type TrainEvent,
  type TrainProgress,
} from "../train/progress_event.ts";

/** How a run ended. Never describes a run that is still going. */
export interface TrainProcessResult {
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
  /**
   * The last lines the trainer wrote (stdout and stderr together, less its JSON event
   * lines), oldest first.
   */
  readonly lastLines: readonly string[];
  /** The last progress seen, if any. */
  readonly progress?: TrainProgress;
  /** How the trainer said it ended (its `done` event), when it said so. */
  readonly done?: TrainDone;
  /**
   * Why it failed, in one line ("Cannot train: ..."): the trainer's `error` event, else its
   * last output line; absent when `ok`.
   */
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
  /** Called with each progress event read; exceptions it throws are ignored. */
  readonly onProgress?: (progress: TrainProgress) => void;
  /** Aborting it cancels the run. */
  readonly signal?: AbortSignal;
}

/**
 * The default trainer: this project's `train` command, which stops when this process is
 * gone and reports its progress as JSON lines.
 */
export function defaultTrainCommand(): string[] {
  return [
    Deno.execPath(),
    "run",
    "-P=cli",
    "main.ts",
    "train",
    "--exit-with-parent",
    "--progress-json",
  ];
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
  if (steps !== undefined) assertPositiveInteger(steps, "steps", "Cannot train");
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

/**
 * A running training subprocess. It starts on construction; {@linkcode TrainProcess.result}
 * settles when it has exited and both pipes are drained, and never rejects (a trainer that
 * cannot be started is a failed result). Disposing cancels it and waits.
 *
 * @example
 * ```ts
 * import { TrainProcess } from "./train_process.ts";
 *
 * async function retrain(promote: (dir: string) => Promise<void>): Promise<void> {
 *   await using run = new TrainProcess({
 *     dataDir: "store/cam1",
 *     outDir: "models/cam1/next",
 *     steps: 2000,
 *   });
 *   const result = await run.result;
 *   if (result.ok) await promote(result.outDir);
 * }
 * ```
 */
export class TrainProcess implements AsyncDisposable {
  /** The argv it runs (see {@linkcode trainArgv}). */
  readonly argv: readonly string[];
  /** How the run ended. Never rejects. */
  readonly result: Promise<TrainProcessResult>;

  readonly #killGraceMs: number;
  readonly #keep: number;
  readonly #lines: string[] = [];
  readonly #onProgress: ((p: TrainProgress) => void) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => void this.cancel();
  #child: Deno.ChildProcess | undefined;
  #progress: TrainProgress | undefined;
  #done: TrainDone | undefined;
  #trainerError: string | undefined;
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
    assertPositiveInteger(this.#keep, "keepLines", "Cannot train");
    if (!(this.#killGraceMs >= 0)) {
      throw new RangeError(`Cannot train: killGraceMs must be >= 0, got ${this.#killGraceMs}`);
    }
    this.#onProgress = options.onProgress;
    this.#signal = options.signal;
    this.result = this.#run(options);
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (this.#signal?.aborted) void this.cancel();
  }

  /** The last progress read, if any. */
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
  cancel(): Promise<TrainProcessResult> {
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

  /** One output line: an event (on stdout) is read, any other line is kept. */
  #push(line: string, events: boolean): void {
    if (line.trim() === "") return;
    const event = events ? parseTrainEvent(line) : undefined;
    if (event === undefined) {
      this.#lines.push(line);
      if (this.#lines.length > this.#keep) this.#lines.shift();
    } else {
      this.#take(event);
    }
  }

  #take(event: TrainEvent): void {
    if (event.type === "error") {
      this.#trainerError = event.message;
    } else if (event.type === "done") {
      const { type: _, ...done } = event;
      this.#done = done;
    } else {
      const { type: _, ...progress } = event;
      this.#progress = progress;
      try {
        this.#onProgress?.(progress);
      } catch {
        // a hook's failure is not the trainer's
      }
    }
  }

  /** Reads a pipe line by line; `events`: the trainer's JSON lines come on it (stdout). */
  async #pump(stream: ReadableStream<Uint8Array>, events: boolean): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    const write = (text: string) => {
      const parts = (partial + text).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? "";
      for (const line of parts) this.#push(line, events);
    };
    try {
      for await (const chunk of stream) write(decoder.decode(chunk, { stream: true }));
    } catch {
      // the pipe broke: what was read is kept
    }
    write(decoder.decode());
    this.#push(partial, events);
  }

  async #run(options: TrainProcessOptions): Promise<TrainProcessResult> {
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
        error: `Cannot train: cannot start ${exe}: ${errorMessage(e)}`,
      };
    }
    const child = this.#child;
    if (this.#cancelled) this.#kill("SIGTERM");
    const [status] = await Promise.all([
      child.status,
      this.#pump(child.stdout, true),
      this.#pump(child.stderr, false),
    ]);
    await child.stdin.close().catch(() => {});
    this.#exited = true;
    clearTimeout(this.#killTimer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const cancelled = this.#cancelled;
    const ok = status.success && !cancelled;
    const lastLines = this.lastLines();
    const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
    const last = this.#trainerError ?? lastLines.at(-1);
    return {
      ok,
      code: status.signal ? null : status.code,
      ...(status.signal ? { signal: status.signal } : {}),
      outDir: options.outDir,
      cancelled,
      durationMs: performance.now() - started,
      lastLines,
      ...(this.#progress ? { progress: this.#progress } : {}),
      ...(this.#done ? { done: this.#done } : {}),
      ...(ok ? {} : {
        error: cancelled
          ? "Cannot train: cancelled"
          : `Cannot train: the trainer exited with ${how}${last ? `: ${last}` : ""}`,
      }),
    };
  }
}
