/**
 * Asks ffprobe for a source's frame size (needed by the `"exact"` resize mode).
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import { redact } from "../core/redact.ts";
import { ffprobeArgs, type FfprobeArgsOptions, type Size } from "./ffmpeg_args.ts";
import { type CameraSource, describeSource, sourceSecrets } from "../core/source.ts";

/** Options of {@linkcode probeVideoSize}. */
export interface ProbeOptions extends FfprobeArgsOptions {
  /** The ffprobe executable. Default `"ffprobe"`. */
  readonly ffprobePath?: string;
  /** Kill ffprobe and fail after this many milliseconds. Default 15000. */
  readonly timeoutMs?: number;
  /** Kills ffprobe and rejects. */
  readonly signal?: AbortSignal;
  /** Receives ffprobe's stderr (already redacted), for a diagnosis ring. */
  readonly onStderr?: (text: string) => void;
}

const decoder = new TextDecoder();

/**
 * Runs ffprobe (argv from {@linkcode ffprobeArgs}, no shell) and returns the size of the
 * source's first video stream.
 *
 * @throws {Error} "Cannot probe <source>: <reason>" (credentials redacted) when ffprobe
 * cannot be started, exits non-zero, times out, is aborted or finds no video stream.
 */
export async function probeVideoSize(
  source: CameraSource,
  options: ProbeOptions,
): Promise<Size> {
  const where = describeSource(source);
  const secrets = sourceSecrets(source);
  const timeoutMs = options.timeoutMs ?? 15_000;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const signals = options.signal ? [stop.signal, options.signal] : [stop.signal];
  const argsOptions: FfprobeArgsOptions = {
    rtspTransport: options.rtspTransport,
    ...(options.ioTimeoutMs !== undefined ? { ioTimeoutMs: options.ioTimeoutMs } : {}),
    ...(options.inputArgs ? { inputArgs: options.inputArgs } : {}),
  };
  let output: Deno.CommandOutput;
  try {
    if (options.signal?.aborted) throw new Error("aborted");
    output = await new Deno.Command(options.ffprobePath ?? "ffprobe", {
      args: ffprobeArgs(source, argsOptions),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.any(signals),
    }).output();
  } catch (e) {
    throw new Error(`Cannot probe ${where}: ${redact(errorMessage(e), secrets)}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
  const stderr = redact(decoder.decode(output.stderr), secrets);
  if (stderr !== "") options.onStderr?.(stderr);
  if (options.signal?.aborted) throw new Error(`Cannot probe ${where}: aborted`);
  if (stop.signal.aborted) throw new Error(`Cannot probe ${where}: no answer in ${timeoutMs} ms`);
  if (!output.success) {
    const last = stderr.trim().split(/\r?\n/).at(-1) ?? "";
    const how = output.signal ? `signal ${output.signal}` : `code ${output.code}`;
    throw new Error(`Cannot probe ${where}: ffprobe exited with ${how}${last ? `: ${last}` : ""}`);
  }
  const size = parseProbe(decoder.decode(output.stdout));
  if (!size) throw new Error(`Cannot probe ${where}: no video stream with a known size`);
  return size;
}

function parseProbe(json: string): Size | undefined {
  try {
    const parsed: unknown = JSON.parse(json);
    const streams = (parsed as { streams?: unknown }).streams;
    if (!Array.isArray(streams)) return undefined;
    const s: unknown = streams[0];
    if (typeof s !== "object" || s === null) return undefined;
    const { width, height } = s as { width?: unknown; height?: unknown };
    if (typeof width !== "number" || typeof height !== "number") return undefined;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      return undefined;
    }
    return { width, height };
  } catch {
    return undefined;
  }
}
