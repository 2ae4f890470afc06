/**
 * Whether an ffmpeg binary can be run.
 *
 * @module
 */

/** Runs `<ffmpeg> -version`; true when it starts and succeeds. */
export async function ffmpegAvailable(ffmpegPath = "ffmpeg"): Promise<boolean> {
  try {
    const out = await new Deno.Command(ffmpegPath, {
      args: ["-hide_banner", "-version"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}
