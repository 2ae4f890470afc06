import { encodePng } from "../image/decode.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { escapeHtml, plotSvg, renderReport } from "./report.ts";

const PNG = encodePng({ width: 1, height: 1, data: Uint8Array.from([255, 0, 0]) });

Deno.test("escapeHtml() escapes markup and quotes", () => {
  assertEquals(
    escapeHtml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
});

Deno.test("plotSvg() draws the curve within the axes, cut at xMax", () => {
  const svg = plotSvg({
    title: "PRO",
    xLabel: "FPR",
    yLabel: "PRO",
    curve: { x: [0, 0.1, 0.3, 1], y: [0, 0.5, 0.9, 1] },
    xMax: 0.3,
  });
  assertOk(svg.startsWith("<svg"), svg);
  const points = /<polyline points="([^"]*)"/.exec(svg)?.[1]?.split(" ") ?? [];
  assertEquals(points.length, 3); // the point past xMax is dropped
  assertEquals(points[0], "48.0,260.0"); // (0, 0): plot area x 48..308, y 12..260
  assertEquals(points[2], "308.0,36.8"); // (0.3, 0.9) at the right edge
});

Deno.test("renderReport() is one self-contained page with one row per image", () => {
  const html = renderReport({
    title: "eval <bottle>",
    summary: { "image AUROC": 0.91234567, images: 2, model: "m" },
    plots: [{ title: "ROC", xLabel: "FPR", yLabel: "TPR", curve: { x: [0, 1], y: [0, 1] } }],
    rows: ["a.png", "b.png"].map((name, i) => ({
      name,
      defect: i ? "crack" : "good",
      score: i,
      flagged: i === 1,
      image: PNG,
      mask: PNG,
      heatmap: PNG,
    })),
  });
  assertEquals(html.match(/<tr class="sample">/g)?.length, 2);
  assertEquals(html.match(/src="data:image\/png;base64,/g)?.length, 6);
  assertOk(html.includes("eval &lt;bottle&gt;"));
  assertOk(html.includes("<td>0.9123</td>"));
  assertOk(html.includes("(flagged)"));
  assertOk(!/<script|src="http|href="http/.test(html), "no external resources or scripts");
});

Deno.test("plotSvg() interpolates the curve where it crosses xMax", () => {
  const svg = plotSvg({
    title: "PRO",
    xLabel: "FPR",
    yLabel: "PRO",
    curve: { x: [0, 0.2, 0.4], y: [0, 0.5, 1] },
    xMax: 0.3,
  });
  const points = /<polyline points="([^"]*)"/.exec(svg)?.[1]?.split(" ") ?? [];
  assertEquals(points.length, 3);
  assertEquals(points[2], "308.0,74.0"); // (0.3, 0.75)
});
