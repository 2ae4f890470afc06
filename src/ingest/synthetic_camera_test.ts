import { assertEquals, assertOk } from "../../tests/assert.ts";
import { defectAt, SyntheticCamera } from "./synthetic_camera.ts";

Deno.test("defectAt() shows a defect one second in six, alternating kinds", () => {
  assertEquals([0, 2.9, 3.5, 4, 9.5, 15.5].map(defectAt), [
    "none",
    "none",
    "scratch",
    "none",
    "stain",
    "scratch",
  ]);
});

Deno.test("SyntheticCamera() produces frames of the asked size in sequence", async () => {
  await using cam = new SyntheticCamera({ name: "syn", width: 256, height: 256, fps: 50 });
  const reader = cam.readable.getReader();
  const a = await reader.read();
  const b = await reader.read();
  reader.releaseLock();
  assertOk(!a.done && !b.done);
  assertEquals([a.value.seq, b.value.seq], [0, 1]);
  assertEquals(a.value.rgb.length, 256 * 256 * 3);
  assertOk(b.value.capturedAt >= a.value.capturedAt);
  assertEquals(cam.status().state, "online");
  await cam.readable.cancel();
  assertEquals(cam.status().state, "offline");
});
