import { assertEquals, assertOk } from "../../tests/assert.ts";
import { createLogger } from "../core/log.ts";
import { ProgressDisplay } from "./progress_display.ts";
import type { TrainProgress } from "./progress_event.ts";
import type { StepEvent } from "./loop.ts";

function event(step: number, total = 100): StepEvent {
  return { step, total, lr: 1e-4, losses: { lossSt: 1, lossAe: 0.5, lossStae: 0.25, loss: 1.75 } };
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => (t += ms) };
}

Deno.test("ProgressDisplay() draws a bar in place with rate and ETA on a terminal", () => {
  const chunks: string[] = [];
  const writer = {
    writeSync: (b: Uint8Array) => {
      chunks.push(new TextDecoder().decode(b));
      return b.length;
    },
  };
  const clock = fakeClock();
  const p = new ProgressDisplay({
    terminal: true,
    writer,
    log: createLogger({ sink: () => {} }),
    now: clock.now,
    barWidth: 10,
  });
  p.start(0);
  clock.advance(2000);
  p.update(event(1));
  clock.advance(2000);
  p.update(event(50));
  p.finish();
  assertEquals(chunks.length, 3);
  assertOk(chunks[1]!.startsWith("\r\x1b[2K[#####-----] step 50/100 loss 1.7500 st 1.0000"));
  assertOk(chunks[1]!.includes("12.500 steps/s"), chunks[1]);
  assertOk(chunks[1]!.includes("ETA 4s"), chunks[1]);
  assertEquals(chunks[2], "\n");
});

Deno.test("ProgressDisplay() logs a plain line every N steps when not on a terminal", () => {
  const lines: string[] = [];
  const clock = fakeClock();
  const p = new ProgressDisplay({
    terminal: false,
    log: createLogger({ sink: (l) => lines.push(l) }),
    every: 5,
    now: clock.now,
  });
  p.start(10);
  for (let s = 11; s <= 22; s++) {
    clock.advance(500);
    p.update(event(s, 22));
  }
  p.finish();
  assertEquals(lines.length, 3); // steps 15, 20 and the last, 22
  assertOk(lines[0]!.includes("step 15/22"), lines[0]);
  assertOk(lines[0]!.includes("2.000 steps/s (0.50 s/step) ETA 4s"), lines[0]);
  assertOk(lines[2]!.includes("step 22/22"));
});

Deno.test("ProgressDisplay() reports the same figures as its lines, at the same steps", () => {
  const lines: string[] = [];
  const reports: TrainProgress[] = [];
  const clock = fakeClock();
  const p = new ProgressDisplay({
    terminal: false,
    log: createLogger({ sink: (l) => lines.push(l) }),
    every: 5,
    now: clock.now,
    onReport: (r) => reports.push(r),
  });
  p.start(10);
  for (let s = 11; s <= 22; s++) {
    clock.advance(500);
    p.update(event(s, 22));
  }
  assertEquals(reports, [
    { step: 15, total: 22, loss: 1.75, eta: "4s", etaMs: 3500 },
    { step: 20, total: 22, loss: 1.75, eta: "1s", etaMs: 1000 },
    { step: 22, total: 22, loss: 1.75, eta: "0s", etaMs: 0 },
  ]);
  assertEquals(lines.length, reports.length);
});
