/**
 * The end of one ffmpeg run, apart from the camera that supervises it: stopping the
 * process (SIGTERM, then SIGKILL) and reading its stderr into a {@linkcode LineRing}.
 *
 * @module
 */
import type { LineRing } from "./line_ring.ts";

/** Options of {@linkcode stopProcess}. */
export interface StopProcessOptions {
  /**
   * Whether the process is expected to exit by itself (its output ended): it then gets
   * SIGTERM only after `graceMs`; otherwise (a stall, a stop) at once.
   */
  readonly ended: boolean;
  /** How long before SIGTERM when `ended`, and between SIGTERM and SIGKILL, ms. */
  readonly graceMs: number;
}

/**
 * Waits for a child process to exit, sending SIGTERM (at once, or after the grace period
 * when it `ended`) and SIGKILL one grace period after SIGTERM. Clears its timers before it
 * returns; a process that has exited already is not signalled.
 *
 * @example
 * ```ts
 * const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" })
 *   .spawn();
 * const status = await stopProcess(child, { ended: false, graceMs: 2000 });
 * console.log(status.signal); // "SIGTERM"
 * ```
 */
export async function stopProcess(
  child: Deno.ChildProcess,
  options: StopProcessOptions,
): Promise<Deno.CommandStatus> {
  const kill = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch {
      // already exited
    }
  };
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const term = () => {
    kill("SIGTERM");
    killTimer = setTimeout(() => kill("SIGKILL"), options.graceMs);
  };
  let termTimer: ReturnType<typeof setTimeout> | undefined;
  if (options.ended) termTimer = setTimeout(term, options.graceMs);
  else term();
  try {
    return await child.status;
  } finally {
    clearTimeout(termTimer);
    clearTimeout(killTimer);
  }
}

/**
 * Reads a process's stderr to its end into `ring` (as text, lines split across chunks
 * kept whole), then flushes the last partial line. A broken pipe ends it quietly: what was
 * read is kept. Never rejects.
 */
export async function drainStderr(
  stream: ReadableStream<Uint8Array>,
  ring: LineRing,
): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) ring.write(decoder.decode(chunk, { stream: true }));
  } catch {
    // the pipe broke: what was read is kept
  }
  ring.write(decoder.decode());
  ring.flush();
}
