/**
 * Writes the demo's bundled images to `assets/demo/`: a synthetic part (a bright ring
 * on a brushed-metal background) and two copies with defects (a dark scratch, a stain).
 *
 * Run: `deno run -R -W tools/make_demo_images.ts`
 *
 * @module
 */
import { PNG } from "pngjs";

const N = 256;

function scene(defect: "none" | "scratch" | "stain"): Uint8Array {
  const png = new PNG({ width: N, height: N });
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      const brushed = 90 + 12 * Math.sin(y * 0.9 + Math.sin(x * 0.05) * 3);
      const r = Math.hypot(x - N / 2, y - N / 2);
      const ring = Math.exp(-(((r - 70) / 10) ** 2)) * 120;
      let v = brushed + ring;
      if (defect === "scratch" && Math.abs(y - (0.6 * x + 40)) < 2 && x > 90 && x < 170) v *= 0.35;
      if (defect === "stain" && Math.hypot(x - 180, y - 90) < 14) v = v * 0.5 + 60;
      const i = (y * N + x) * 4;
      png.data[i] = Math.min(255, v * 1.02);
      png.data[i + 1] = Math.min(255, v);
      png.data[i + 2] = Math.min(255, v * 0.95);
      png.data[i + 3] = 255;
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

const dir = new URL("../assets/demo/", import.meta.url);
await Deno.writeFile(new URL("part_good.png", dir), scene("none"));
await Deno.writeFile(new URL("part_scratch.png", dir), scene("scratch"));
await Deno.writeFile(new URL("part_stain.png", dir), scene("stain"));
