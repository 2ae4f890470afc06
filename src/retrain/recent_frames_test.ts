import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { rampFrame } from "./_test_utils.ts";
import { RecentFrames } from "./recent_frames.ts";

Deno.test("RecentFrames.find() gives the latest or a held frame, else says why not", () => {
  const recent = new RecentFrames(2);
  const none = recent.find();
  assertOk(none instanceof RangeError);
  assertEquals(none.message, "Cannot mark frame: no frame seen yet");
  for (let seq = 1; seq <= 3; seq++) recent.push(rampFrame(seq, 4));
  assertEquals(recent.find(), rampFrame(3, 4));
  assertEquals(recent.find(2), rampFrame(2, 4));
  const gone = recent.find(1);
  assertOk(gone instanceof RangeError);
  assertEquals(gone.message, "Cannot mark frame: frame 1 is no longer held");
  assertThrows(() => new RecentFrames(0), RangeError, "markRing must be a positive integer");
});
