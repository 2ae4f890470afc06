import { assertEquals } from "../../tests/assert.ts";
import { ffmpegAvailable } from "./ffmpeg_available.ts";

Deno.test("ffmpegAvailable() is false for a binary that does not exist", async () => {
  assertEquals(await ffmpegAvailable("/nonexistent/ffmpeg"), false);
});
