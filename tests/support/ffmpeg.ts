/**
 * Whether ffmpeg runs here: tests that need it skip with a message otherwise.
 *
 * @module
 */
import { ffmpegAvailable } from "../../src/ingest/ffmpeg_available.ts";

/** True when `ffmpeg -version` runs (checked once, when this module loads). */
export const HAS_FFMPEG: boolean = await ffmpegAvailable();
