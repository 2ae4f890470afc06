/**
 * Whether ffmpeg runs here: tests that need it pass `ignore: !HAS_FFMPEG` and are skipped
 * with a message otherwise; under `CI=true` a missing ffmpeg fails the run (see
 * `components.ts`).
 *
 * @module
 */
import { ffmpegAvailable } from "../../src/ingest/ffmpeg_available.ts";
import { component } from "./components.ts";

/**
 * True when `ffmpeg -version` runs (checked once, when this module loads).
 *
 * @throws {Error} under `CI=true` when it does not.
 */
export const HAS_FFMPEG: boolean = component("ffmpeg", await ffmpegAvailable(), {
  why: "`ffmpeg -version` does not run",
});
