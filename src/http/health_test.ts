import type { CameraStatus } from "../core/frame.ts";
import { assertEquals } from "../../tests/assert.ts";
import { checkHealth } from "./health.ts";
import { sampleStatus } from "./_test_utils.ts";

function camera(name: string, state: CameraStatus["state"]): CameraStatus {
  return { camera: name, state, framesIn: 0, framesDropped: 0, reconnects: 0, stalls: 0 };
}

Deno.test("checkHealth() is ok while any camera is not offline", () => {
  assertEquals(checkHealth(sampleStatus()), { ok: true });
  assertEquals(
    checkHealth(sampleStatus([camera("a", "offline"), camera("b", "reconnecting")])),
    { ok: true },
  );
  assertEquals(checkHealth(sampleStatus([camera("a", "starting")])), { ok: true });
});

Deno.test("checkHealth() is ok with no cameras", () => {
  assertEquals(checkHealth(sampleStatus([])), { ok: true });
});

Deno.test("checkHealth() fails when every camera is offline", () => {
  assertEquals(checkHealth(sampleStatus([camera("a", "offline"), camera("b", "offline")])), {
    ok: false,
    reason: "all 2 cameras are offline (a, b)",
  });
  assertEquals(checkHealth(sampleStatus([camera("a", "offline")])), {
    ok: false,
    reason: "camera a is offline",
  });
});
