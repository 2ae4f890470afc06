/**
 * The evaluation's HTML report: one self-contained file (no scripts, no external files)
 * with the metrics, the image- and pixel-level ROC curves and the PRO curve as inline
 * SVG, and one row per test image showing the image, its ground-truth mask and the jet
 * heatmap of its anomaly map side by side, as base64 PNG data URIs.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** A curve to draw: x and y in [0, 1]. */
export interface PlotCurve {
  readonly x: readonly number[];
  readonly y: readonly number[];
}

/** A plot of the report. */
export interface ReportPlot {
  /** The title above the plot, e.g. `Image ROC (AUROC 0.912)`. */
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly curve: PlotCurve;
  /** The largest x shown (the plot's right edge). Default 1. */
  readonly xMax?: number;
  /** Draw the chance diagonal. Default false. */
  readonly diagonal?: boolean;
}

/** One test image's row. */
export interface ReportRow {
  /** The file, as shown. */
  readonly name: string;
  /** `good` or the defect type. */
  readonly defect: string;
  /** The raw image score. */
  readonly score: number;
  /** Whether the score is at or above the report's threshold. */
  readonly flagged: boolean;
  /** PNG bytes of the input image (as the model saw it). */
  readonly image: Uint8Array;
  /** PNG bytes of the ground-truth mask. */
  readonly mask: Uint8Array;
  /** PNG bytes of the heatmap. */
  readonly heatmap: Uint8Array;
}

/** What {@linkcode renderReport} draws. */
export interface ReportInput {
  /** The page title, e.g. `EfficientAD on bottle`. */
  readonly title: string;
  /** Metric name to value, shown in a table in this order (numbers to 4 decimals). */
  readonly summary: Readonly<Record<string, string | number>>;
  readonly plots: readonly ReportPlot[];
  readonly rows: readonly ReportRow[];
  /** A line under the rows' heading (how the heatmaps are scaled). */
  readonly note?: string;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const PLOT = { width: 320, height: 300, left: 48, right: 12, top: 12, bottom: 40 };

/** An SVG line chart of one curve, axes from 0 to `xMax` and 0 to 1. */
export function plotSvg(plot: ReportPlot): string {
  const { width, height, left, right, top, bottom } = PLOT;
  const xMax = plot.xMax ?? 1;
  const w = width - left - right;
  const h = height - top - bottom;
  const px = (x: number) => (left + (Math.min(x, xMax) / xMax) * w).toFixed(1);
  const py = (y: number) => (top + (1 - y) * h).toFixed(1);
  const pts: string[] = [];
  const { x, y } = plot.curve;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    if (xi > xMax) {
      // Cut at xMax, interpolating linearly from the previous point.
      const x0 = x[i - 1];
      const y0 = y[i - 1];
      if (x0 !== undefined && y0 !== undefined && x0 < xMax) {
        pts.push(`${px(xMax)},${py(y0 + (y[i]! - y0) * (xMax - x0) / (xi - x0))}`);
      }
      break;
    }
    pts.push(`${px(xi)},${py(y[i]!)}`);
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const grid = ticks.map((t) =>
    `<line x1="${px(t * xMax)}" y1="${py(0)}" x2="${px(t * xMax)}" y2="${py(1)}" class="grid"/>` +
    `<line x1="${px(0)}" y1="${py(t)}" x2="${px(xMax)}" y2="${py(t)}" class="grid"/>` +
    `<text x="${px(t * xMax)}" y="${height - bottom + 14}" text-anchor="middle">${+(t * xMax)
      .toFixed(3)}</text>` +
    `<text x="${left - 6}" y="${+py(t) + 4}" text-anchor="end">${t}</text>`
  ).join("");
  const diagonal = plot.diagonal
    ? `<line x1="${px(0)}" y1="${py(0)}" x2="${px(xMax)}" y2="${
      py(Math.min(xMax, 1))
    }" class="chance"/>`
    : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(plot.title)}">` +
    `<rect x="${left}" y="${top}" width="${w}" height="${h}" class="frame"/>${grid}${diagonal}` +
    `<polyline points="${pts.join(" ")}" class="curve"/>` +
    `<text x="${left + w / 2}" y="${height - 6}" text-anchor="middle">${
      escapeHtml(plot.xLabel)
    }</text>` +
    `<text x="12" y="${top + h / 2}" text-anchor="middle" transform="rotate(-90 12 ${
      top + h / 2
    })">${escapeHtml(plot.yLabel)}</text></svg>`;
}

function dataUri(png: Uint8Array): string {
  return `data:image/png;base64,${
    Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString("base64")
  }`;
}

function formatValue(v: string | number): string {
  if (typeof v === "string") return escapeHtml(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}
.summary td:first-child{color:#555}.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots figure{margin:0}.plots figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#444}.grid{stroke:#e4e4e4}.frame{fill:none;stroke:#888}
.chance{stroke:#bbb;stroke-dasharray:4 3}.curve{fill:none;stroke:#c0392b;stroke-width:2}
.samples td{vertical-align:top;border-top:1px solid #ddd}.samples img{width:192px;height:auto;image-rendering:pixelated}
.flagged{color:#c0392b;font-weight:600}`;

/**
 * Renders the report as one HTML document.
 *
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 *
 * const html = renderReport({
 *   title: "EfficientAD on bottle",
 *   summary: { "image AUROC": 0.98 },
 *   plots: [],
 *   rows: [],
 * });
 * ```
 */
export function renderReport(input: ReportInput): string {
  const summary = Object.entries(input.summary)
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${formatValue(v)}</td></tr>`).join("\n");
  const plots = input.plots.map((p) =>
    `<figure><figcaption>${escapeHtml(p.title)}</figcaption>${plotSvg(p)}</figure>`
  ).join("\n");
  const rows = input.rows.map((r, i) =>
    `<tr class="sample"><td>${i + 1}</td><td>${escapeHtml(r.name)}<br>${
      escapeHtml(r.defect)
    }<br><span${r.flagged ? ' class="flagged"' : ""}>score ${r.score.toPrecision(5)}${
      r.flagged ? " (flagged)" : ""
    }</span></td>` +
    `<td><img alt="image" src="${dataUri(r.image)}"></td>` +
    `<td><img alt="mask" src="${dataUri(r.mask)}"></td>` +
    `<td><img alt="heatmap" src="${dataUri(r.heatmap)}"></td></tr>`
  ).join("\n");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style></head><body>
<h1>${escapeHtml(input.title)}</h1>
<table class="summary">
${summary}
</table>
<h2>Curves</h2>
<div class="plots">
${plots}
</div>
<h2>Test images (${input.rows.length})</h2>
${input.note ? `<p>${escapeHtml(input.note)}</p>` : ""}
<table class="samples">
<tr><th>#</th><th>file</th><th>image</th><th>ground truth</th><th>heatmap</th></tr>
${rows}
</table>
</body></html>
`;
}
