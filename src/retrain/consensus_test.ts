import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { consensusFilter, type RgbImage } from "./consensus.ts";
import { HAS_FFMPEG } from "../../tests/support/ffmpeg.ts";

function image(size: number, paint?: (x: number, y: number) => number | undefined): RgbImage {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = paint?.(x, y) ?? (x + y) % 200;
      rgb.fill(v, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  return { width: size, height: size, rgb };
}

Deno.test("consensusFilter() leaves out the frame with a local difference", () => {
  const frames = Array.from({ length: 8 }, () => image(64));
  frames[5] = image(64, (x, y) => (x >= 10 && x < 18 && y >= 20 && y < 26 ? 0 : undefined));
  const r = consensusFilter(frames);
  assertEquals(r.dropped, [5]);
  assertEquals(r.keep, [0, 1, 2, 3, 4, 6, 7]);
  assertOk(r.deviations[5]! > r.bound, `${r.deviations[5]} <= ${r.bound}`);
});

Deno.test("consensusFilter() keeps everything when the frames agree, and never drops over the cap", () => {
  assertEquals(consensusFilter(Array.from({ length: 6 }, () => image(32))).dropped, []);
  assertEquals(consensusFilter([image(32), image(32, () => 0)]).dropped, []);
  // Every frame different: at most half go.
  const frames = Array.from({ length: 6 }, (_, i) => image(32, () => i * 40));
  assertOk(consensusFilter(frames).dropped.length <= 3);
  assertThrows(() => consensusFilter([image(32), image(16)]), RangeError, "sizes differ");
  assertThrows(() => consensusFilter([image(32)], { grid: 0 }), RangeError, "grid");
});

Deno.test({
  name: "consensusFilter() finds the injected defects of the demo scene (ffmpeg)" +
    (HAS_FFMPEG ? "" : " (skipped: ffmpeg missing)"),
  ignore: !HAS_FFMPEG,
  async fn() {
    // The demo's lavfi scene: sensor noise, a stain for t in [3, 4] s of every 6 s and a
    // scratch for t in [7, 8.5] s of every 10 s; 12 s at 2 frames per second.
    const graph = "gradients=s=128x128:r=10:c0=0x5c6670:c1=0xa9b2ba:speed=0.00001:seed=1," +
      "drawgrid=w=16:h=16:t=2:c=0x3c444c,noise=alls=8:allf=t," +
      "drawbox=x=75:y=36:w=15:h=10:c=0x101214:t=fill:enable='between(mod(t,6),3,4)'," +
      "drawbox=x=18:y=92:w=36:h=2:c=0x1c1f22:t=fill:enable='between(mod(t,10),7,8.5)'";
    const out = await new Deno.Command("ffmpeg", {
      args: [
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        graph,
        "-t",
        "12",
        "-vf",
        "fps=2",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertOk(out.success, new TextDecoder().decode(out.stderr));
    const size = 128 * 128 * 3;
    const frames: RgbImage[] = [];
    for (let o = 0; o + size <= out.stdout.length; o += size) {
      frames.push({ width: 128, height: 128, rgb: out.stdout.subarray(o, o + size) });
    }
    assertEquals(frames.length, 24);
    // Frames exactly on a window's edge may show the defect or not (ffmpeg's frame pick).
    const inside = (t: number) => (t % 6 > 3 && t % 6 < 4) || (t % 10 > 7 && t % 10 < 8.5);
    const edge = (t: number) => [3, 4].includes(t % 6) || [7, 8.5].includes(t % 10);
    const dropped = new Set(consensusFilter(frames).dropped);
    for (let i = 0; i < frames.length; i++) {
      const t = i / 2;
      if (edge(t)) continue;
      assertEquals(dropped.has(i), inside(t), `frame ${i} (t = ${t} s)`);
    }
    assertOk(dropped.size >= 6, `only ${dropped.size} dropped`);
  },
});
