/**
 * One camera: a supervised ffmpeg subprocess that decodes a source into raw RGB frames at
 * the model's input size, exposed as a `ReadableStream<Frame>`.
 *
 * @module
 */
import type { CameraState, CameraStatus, Frame } from "../core/frame.ts";
import { assertPositiveInteger } from "../core/check.ts";
import { errorMessage } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { redact } from "../core/redact.ts";
import { Backoff } from "../core/backoff.ts";
import { resizeRgbExact } from "./exact_resize.ts";
import { ffmpegArgs, type FfmpegArgsOptions, ffmpegFrameSize, type Size } from "./ffmpeg_args.ts";
import { drainStderr, stopProcess } from "./ffmpeg_process.ts";
import { FrameAssembler } from "./frame_assembler.ts";
import { LineRing } from "./line_ring.ts";
import { probeVideoSize } from "./probe.ts";
import { type CameraSource, describeSource, sourceSecrets } from "../core/source.ts";

/** Restart delays of {@linkcode FfmpegCameraOptions.backoff}. */
export interface CameraBackoffOptions {
  /** The first restart delay, ms. */
  readonly initialMs: number;
  /** The largest restart delay, ms (doubling stops here). */
  readonly maxMs: number;
  /** Relative jitter of each delay. Default: `Backoff`'s (±20 %). */
  readonly jitter?: number;
  /** Delays start over once a run has delivered frames for this long. Default 10000 ms. */
  readonly resetAfterMs?: number;
}

/**
 * Options of {@linkcode FfmpegCamera}: what ffmpeg is asked to do (the options of
 * {@linkcode ffmpegArgs}, documented there; `sourceSize` is probed and `logLevel` fixed)
 * and how the camera supervises it. What a pipeline file sets has no default here: the
 * pipeline passes its resolved values.
 */
export interface FfmpegCameraOptions extends Omit<FfmpegArgsOptions, "sourceSize" | "logLevel"> {
  /** The camera's name: `Frame.camera` and `CameraStatus.camera`. */
  readonly name: string;
  /**
   * What to read, as the pipeline config resolved it (or `parseSource` in
   * `src/core/source.ts` made it from a string). Credentials in an RTSP URL are redacted
   * everywhere but ffmpeg's argv.
   */
  readonly source: CameraSource;
  /** The watchdog restarts ffmpeg when no frame arrives for this long, ms. */
  readonly stallTimeoutMs: number;
  /**
   * How long a fresh ffmpeg (and, in exact mode, ffprobe) may take to deliver its first
   * frame before the watchdog restarts it. Default `max(stallTimeoutMs, 15000)`.
   */
  readonly startTimeoutMs?: number;
  /** Restart delays. */
  readonly backoff: CameraBackoffOptions;
  /**
   * Give up (state `offline`, stream closed) after this many restarts in a row that
   * delivered no frame. Default `Infinity`: a camera is retried forever, because a camera
   * that is down for an hour should come back by itself.
   */
  readonly giveUpAfter?: number;
  /** How many undelivered frames wait for a slow consumer (the oldest is dropped). Default 2. */
  readonly queueSize?: number;
  /** After SIGTERM, how long ffmpeg has to exit before SIGKILL. Default 2000 ms. */
  readonly killGraceMs?: number;
  /** How many lines of ffmpeg's stderr to keep. Default 50. */
  readonly stderrLines?: number;
  /** Where state changes go. Default: a logger on stderr scoped `camera <name>`. */
  readonly logger?: Logger;
  /** Aborting it disposes of the camera. */
  readonly signal?: AbortSignal;
  /**
   * Called with a fresh status when the state changes and when a restart is scheduled
   * (the counters changed), never per frame. Exceptions it throws are logged and ignored.
   */
  readonly onStatus?: (status: CameraStatus) => void;
  /** More strings to redact from logs and the stderr ring. */
  readonly secrets?: readonly string[];
  /** The ffmpeg executable. Default `"ffmpeg"`. */
  readonly ffmpegPath?: string;
  /** The ffprobe executable (exact mode without ROI). Default `"ffprobe"`. */
  readonly ffprobePath?: string;
}

/** How one ffmpeg run ended. */
interface RunOutcome {
  readonly frames: number;
  readonly reason: "ended" | "stall" | "stopped";
  readonly error: string;
}

function positive(name: string, v: number): number {
  if (!(v > 0)) throw new RangeError(`Cannot create camera: ${name} must be positive, got ${v}`);
  return v;
}

/**
 * A camera read through one ffmpeg subprocess at a time, supervised.
 *
 * **Frames.** ffmpeg writes raw RGB24 frames to its stdout; they are cut in exact frame
 * sizes (partial reads accumulate, a partial frame is never emitted) and emitted on
 * {@linkcode FfmpegCamera.readable} as {@linkcode Frame}s at the model's size, with `seq`
 * counting from 0 across restarts and `capturedAt` the epoch milliseconds at which the
 * frame's last byte was read. In `"exact"` resize mode ffmpeg writes source-size (or ROI)
 * frames, the source size coming from ffprobe at every start (or from the ROI), and
 * {@linkcode resizeRgbExact} makes them model-size.
 *
 * **Backpressure: the decoder never blocks.** stdout is read as fast as ffmpeg writes, so
 * its pipe never fills. A frame goes straight to a pending `read()`; otherwise it waits in
 * a queue of `queueSize` frames (default 2), and when that is full the oldest waiting frame
 * is dropped and counted in `framesDropped` (the status's camera-side drops). A consumer
 * that keeps up gets every frame; one that falls behind gets the newest ones.
 *
 * **Supervision.** When ffmpeg exits, fails to connect, cannot be started, or the stream
 * ends, it is restarted after a jittered exponential delay (`backoff`: initial, doubling,
 * capped at max, ±20 %, starting over once a run has delivered frames for `resetAfterMs`);
 * `reconnects` counts those restarts. A watchdog kills ffmpeg (SIGTERM, then SIGKILL after
 * `killGraceMs`) when no frame arrived for `stallTimeoutMs` (`startTimeoutMs` for the first
 * frame of a run) and restarts it the same way; `stalls` counts those. Each restart counts
 * in exactly one of the two. State: `starting` until the first frame, `online` while frames
 * flow, `reconnecting` from a failure until the next run's first frame, `offline` once
 * disposed (or after `giveUpAfter` fruitless restarts; never by default). Errors and the
 * last ~50 lines of ffmpeg's stderr ({@linkcode FfmpegCamera.stderrTail}) have credentials
 * redacted, as has every log line.
 *
 * **Lifetime.** ffmpeg starts on construction. Disposing (or aborting `signal`, or
 * cancelling `readable`) stops the watchdog and timers, kills ffmpeg, waits for it to exit
 * and closes every pipe; frames still queued are delivered, then `readable` closes. The
 * readable never errors.
 *
 * @example
 * ```ts
 * import { FfmpegCamera } from "./ffmpeg_camera.ts";
 * import { parseSource } from "../core/source.ts";
 * import type { Frame } from "../core/frame.ts";
 *
 * async function watch(handle: (frame: Frame) => void): Promise<void> {
 *   await using camera = new FfmpegCamera({
 *     name: "line-1",
 *     source: parseSource("rtsp://user:pw@10.0.0.5/s1"),
 *     width: 256, height: 256, fps: 5, resize: "exact", loop: false, rtspTransport: "tcp",
 *     stallTimeoutMs: 5000, backoff: { initialMs: 500, maxMs: 30_000 },
 *   });
 *   for await (const frame of camera.readable) handle(frame);
 * }
 * ```
 */
export class FfmpegCamera implements AsyncDisposable {
  /** The camera's name. */
  readonly name: string;
  /** Frames, model-size. Closes when the camera is disposed or gives up; never errors. */
  readonly readable: ReadableStream<Frame>;

  readonly #source: CameraSource;
  readonly #where: string;
  readonly #secrets: string[];
  readonly #argsOptions: FfmpegArgsOptions;
  readonly #model: Size;
  readonly #exact: boolean;
  readonly #stallMs: number;
  readonly #startMs: number;
  readonly #resetAfterMs: number;
  readonly #giveUpAfter: number;
  readonly #queueSize: number;
  readonly #killGraceMs: number;
  readonly #ffmpegPath: string;
  readonly #ffprobePath: string;
  readonly #log: Logger;
  readonly #onStatus: ((status: CameraStatus) => void) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #backoff: Backoff;
  readonly #stderr: LineRing;
  readonly #stop = new AbortController();

  #state: CameraState = "starting";
  #seq = 0;
  #framesIn = 0;
  #framesDropped = 0;
  #reconnects = 0;
  #stalls = 0;
  #lastFrameAt: number | undefined;
  #lastError: string | undefined;
  #runFirstFrameAt: number | undefined;

  #controller: ReadableStreamDefaultController<Frame> | undefined;
  #queue: Frame[] = [];
  #wanted: (() => void) | undefined;
  #streamClosed = false;

  readonly #supervisor: Promise<void>;
  #closing: Promise<void> | undefined;
  readonly #onAbort = (): void => void this.close();

  /**
   * Validates the options and starts ffmpeg.
   *
   * @throws {TypeError} when the name is empty.
   * @throws {RangeError} when a size, rate, ROI, timeout or count is out of range.
   */
  constructor(options: FfmpegCameraOptions) {
    if (options.name.trim() === "") throw new TypeError("Cannot create camera: name is empty");
    this.name = options.name;
    this.#source = options.source;
    this.#secrets = [...sourceSecrets(this.#source), ...(options.secrets ?? [])];
    this.#where = redact(describeSource(this.#source), this.#secrets);
    this.#model = { width: options.width, height: options.height };
    this.#exact = options.resize === "exact";
    this.#argsOptions = {
      width: options.width,
      height: options.height,
      resize: options.resize,
      loop: options.loop,
      rtspTransport: options.rtspTransport,
      ...(options.fps !== undefined ? { fps: options.fps } : {}),
      ...(options.roi ? { roi: options.roi } : {}),
      ...(options.hwaccel ? { hwaccel: options.hwaccel } : {}),
      ...(options.inputArgs ? { inputArgs: options.inputArgs } : {}),
      ...(options.realtime !== undefined ? { realtime: options.realtime } : {}),
      ...(options.ioTimeoutMs !== undefined ? { ioTimeoutMs: options.ioTimeoutMs } : {}),
    };
    // Build once now so that bad options throw here, not in the supervisor.
    ffmpegArgs(this.#source, { ...this.#argsOptions, sourceSize: { width: 1, height: 1 } });
    this.#stallMs = positive("stallTimeoutMs", options.stallTimeoutMs);
    this.#startMs = positive(
      "startTimeoutMs",
      options.startTimeoutMs ?? Math.max(this.#stallMs, 15_000),
    );
    const b = options.backoff;
    this.#backoff = new Backoff({
      initialMs: b.initialMs,
      maxMs: b.maxMs,
      ...(b.jitter !== undefined ? { jitter: b.jitter } : {}),
    });
    this.#resetAfterMs = b.resetAfterMs ?? 10_000;
    this.#giveUpAfter = options.giveUpAfter ?? Infinity;
    positive("giveUpAfter", this.#giveUpAfter);
    this.#queueSize = options.queueSize ?? 2;
    assertPositiveInteger(this.#queueSize, "queueSize", "Cannot create camera");
    this.#killGraceMs = options.killGraceMs ?? 2000;
    this.#ffmpegPath = options.ffmpegPath ?? "ffmpeg";
    this.#ffprobePath = options.ffprobePath ?? "ffprobe";
    this.#log = options.logger ?? createLogger({ scope: `camera ${options.name}` });
    this.#onStatus = options.onStatus;
    this.#stderr = new LineRing(options.stderrLines ?? 50, (l) => redact(l, this.#secrets));

    this.readable = new ReadableStream<Frame>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => {
        const frame = this.#queue.shift();
        if (frame) return controller.enqueue(frame);
        if (this.#streamClosed) return;
        return new Promise<void>((resolve) => (this.#wanted = resolve));
      },
      cancel: () => {
        this.#queue = [];
        this.#streamClosed = true;
        this.#releasePull();
        return this.close();
      },
    }, { highWaterMark: 0 });

    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (this.#signal?.aborted) this.#stop.abort();
    this.#supervisor = this.#supervise();
    if (this.#signal?.aborted) void this.close();
  }

  /** The source as shown in logs and errors (credentials redacted). */
  get source(): string {
    return this.#where;
  }

  /** The camera's state and counters now. */
  status(): CameraStatus {
    return {
      camera: this.name,
      state: this.#state,
      framesIn: this.#framesIn,
      framesDropped: this.#framesDropped,
      reconnects: this.#reconnects,
      stalls: this.#stalls,
      ...(this.#lastFrameAt !== undefined ? { lastFrameAt: this.#lastFrameAt } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
    };
  }

  /**
   * The last lines ffmpeg and ffprobe wrote to stderr (credentials redacted), oldest first,
   * with a `$ ffmpeg ...` line marking each start.
   */
  stderrTail(): string[] {
    return this.#stderr.lines();
  }

  /**
   * Stops the camera: the watchdog and timers, then ffmpeg (SIGTERM, SIGKILL after the
   * grace period), waiting for it to exit and its pipes to close; then closes `readable`
   * after the queued frames. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await this.#supervisor;
      this.#setState("offline", "disposed");
      this.#closeStream();
    })();
    return this.#closing;
  }

  /** Same as {@linkcode FfmpegCamera.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #supervise(): Promise<void> {
    let fruitless = 0;
    this.#log.info("camera starting", { camera: this.name, source: this.#where });
    try {
      while (!this.#stop.signal.aborted) {
        const outcome = await this.#runOnce();
        if (this.#stop.signal.aborted || outcome.reason === "stopped") break;
        fruitless = outcome.frames > 0 ? 0 : fruitless + 1;
        if (outcome.reason === "stall") this.#stalls++;
        else this.#reconnects++;
        this.#lastError = outcome.error;
        if (fruitless >= this.#giveUpAfter) {
          this.#log.error("camera offline: giving up", {
            camera: this.name,
            restarts: fruitless,
            error: outcome.error,
          });
          this.#setState("offline", "gave up");
          break;
        }
        const delayMs = this.#backoff.next();
        this.#setState("reconnecting", outcome.reason, {
          error: outcome.error,
          retryInMs: delayMs,
        }, true);
        await this.#sleep(delayMs);
      }
    } catch (e) {
      // A bug, not a camera failure: report it and stop rather than spin.
      this.#lastError = redact(errorMessage(e), this.#secrets);
      this.#log.error("camera supervisor failed", { camera: this.name, error: this.#lastError });
      this.#setState("offline", "internal error");
    }
    this.#closeStream();
  }

  async #runOnce(): Promise<RunOutcome> {
    const signal = this.#stop.signal;
    const fail = (reason: RunOutcome["reason"], message: string): RunOutcome => ({
      frames: 0,
      reason,
      error: redact(`Cannot read camera ${this.name} (${this.#where}): ${message}`, this.#secrets),
    });

    let argsOptions = this.#argsOptions;
    if (this.#exact && !argsOptions.roi) {
      try {
        const sourceSize = await probeVideoSize(this.#source, {
          ffprobePath: this.#ffprobePath,
          timeoutMs: this.#startMs,
          signal,
          onStderr: (text) => this.#stderr.write(text),
          rtspTransport: argsOptions.rtspTransport,
          ...(argsOptions.ioTimeoutMs !== undefined
            ? { ioTimeoutMs: argsOptions.ioTimeoutMs }
            : {}),
          ...(argsOptions.inputArgs ? { inputArgs: argsOptions.inputArgs } : {}),
        });
        argsOptions = { ...argsOptions, sourceSize };
      } catch (e) {
        if (signal.aborted) return fail("stopped", "stopped");
        return fail("ended", errorMessage(e));
      }
    }
    const frameSize = ffmpegFrameSize(argsOptions);
    const args = ffmpegArgs(this.#source, argsOptions);
    this.#stderr.push(`$ ${this.#ffmpegPath} ${args.join(" ")}`);

    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#ffmpegPath, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      return fail("ended", `cannot start ffmpeg: ${errorMessage(e)}`);
    }
    this.#runFirstFrameAt = undefined;
    const stderrDone = drainStderr(child.stderr, this.#stderr);
    // BYOB: ffmpeg's bytes are read straight into the frame being filled (no chunk is
    // allocated or copied per read).
    const reader = child.stdout.getReader({ mode: "byob" });
    const assembler = new FrameAssembler(frameSize.width * frameSize.height * 3);

    // An object, not a `let`: the watchdog and the stop listener change it from closures.
    const run: { reason: RunOutcome["reason"] } = { reason: "ended" };
    let frames = 0;
    let waitedMs = this.#startMs;
    const interrupt = (why: "stall" | "stopped") => {
      if (run.reason !== "ended") return;
      run.reason = why;
      reader.cancel().catch(() => {});
    };
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      clearTimeout(watchdog);
      waitedMs = ms;
      watchdog = setTimeout(() => interrupt("stall"), ms);
    };
    const onStop = () => interrupt("stopped");
    signal.addEventListener("abort", onStop, { once: true });
    arm(this.#startMs);
    if (signal.aborted) onStop();
    let readError: string | undefined;
    try {
      while (run.reason === "ended") {
        const { value, done } = await reader.read(assembler.readView());
        if (done || value === undefined || run.reason !== "ended") break;
        const rgb = assembler.commit(value);
        if (rgb !== undefined) {
          frames++;
          arm(this.#stallMs);
          this.#emit(rgb, frameSize);
        }
      }
    } catch (e) {
      readError = errorMessage(e);
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", onStop);
      await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
    const reason = run.reason;
    const status = await stopProcess(child, {
      ended: reason === "ended",
      graceMs: this.#killGraceMs,
    });
    await stderrDone;

    if (reason === "stopped") return { frames, reason, error: "stopped" };
    const partial = assembler.pendingBytes > 0
      ? ` (${assembler.pendingBytes} bytes of a partial frame dropped)`
      : "";
    let message: string;
    if (reason === "stall") {
      message = frames === 0
        ? `no first frame in ${waitedMs} ms, ffmpeg restarted`
        : `no frame for ${waitedMs} ms (stall), ffmpeg restarted`;
    } else if (readError !== undefined) {
      message = `reading ffmpeg's output failed: ${readError}`;
    } else if (status.success) {
      message = "the stream ended (ffmpeg exited with code 0)";
    } else {
      const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
      const last = this.#stderr.last();
      message = `ffmpeg exited with ${how}${last && !last.startsWith("$ ") ? `: ${last}` : ""}`;
    }
    return {
      frames,
      reason,
      error: redact(
        `Cannot read camera ${this.name} (${this.#where}): ${message}${partial}`,
        this.#secrets,
      ),
    };
  }

  #emit(raw: Uint8Array, frameSize: Size): void {
    const capturedAt = Date.now();
    const rgb = this.#exact ? resizeRgbExact(raw, frameSize, this.#model) : raw;
    const frame: Frame = {
      camera: this.name,
      seq: this.#seq++,
      capturedAt,
      width: this.#model.width,
      height: this.#model.height,
      rgb,
    };
    this.#framesIn++;
    this.#lastFrameAt = capturedAt;
    if (this.#runFirstFrameAt === undefined) {
      this.#runFirstFrameAt = capturedAt;
      this.#setState("online", "first frame", {
        frameSize: `${frameSize.width}x${frameSize.height}`,
      });
    } else if (
      this.#backoff.attempt > 0 && capturedAt - this.#runFirstFrameAt >= this.#resetAfterMs
    ) {
      this.#backoff.reset();
    }
    this.#deliver(frame);
  }

  #deliver(frame: Frame): void {
    if (this.#streamClosed || !this.#controller) return;
    const wanted = this.#wanted;
    if (wanted) {
      this.#wanted = undefined;
      this.#controller.enqueue(frame);
      wanted();
      return;
    }
    this.#queue.push(frame);
    while (this.#queue.length > this.#queueSize) {
      this.#queue.shift();
      this.#framesDropped++;
    }
  }

  #releasePull(): void {
    const wanted = this.#wanted;
    this.#wanted = undefined;
    wanted?.();
  }

  #closeStream(): void {
    if (this.#streamClosed) return;
    this.#streamClosed = true;
    const controller = this.#controller;
    if (controller) {
      try {
        for (const frame of this.#queue) controller.enqueue(frame);
        controller.close();
      } catch {
        // cancelled by the consumer meanwhile
      }
    }
    this.#queue = [];
    this.#releasePull();
  }

  #setState(
    state: CameraState,
    why: string,
    fields: Record<string, unknown> = {},
    always = false,
  ): void {
    if (state === this.#state && !always) return;
    const changed = state !== this.#state;
    this.#state = state;
    const line = { camera: this.name, source: this.#where, reason: why, ...fields };
    if (state === "reconnecting") {
      this.#log.warn(changed ? "camera reconnecting" : "camera still reconnecting", {
        ...line,
        reconnects: this.#reconnects,
        stalls: this.#stalls,
      });
    } else if (state === "online") this.#log.info("camera online", line);
    else if (state === "offline") this.#log.info("camera offline", line);
    if (this.#onStatus) {
      try {
        this.#onStatus(this.status());
      } catch (e) {
        this.#log.warn("camera onStatus callback failed", {
          camera: this.name,
          error: redact(errorMessage(e), this.#secrets),
        });
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
