import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { displayName } from "../model/labels.ts";
import type { CalibrationBin, RocPoint } from "./auroc.ts";

/**
 * Plots are vega-lite specifications rendered headless by vega to SVG, then rasterised to PNG by
 * resvg: one declarative description per chart, and the same picture in both formats.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): Buffer {
  const r = new Resvg(svg, { fitTo: { mode: "zoom", value: scale }, background: "white", font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } });
  return Buffer.from(r.render().asPng());
}

const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** A 420x420 chart whose `layers` lie over the dashed y = x diagonal (chance for ROC, perfect calibration). */
function unitSquareChart(title: string, layers: object[]): TopLevelSpec {
  return {
    $schema: VEGA_LITE_SCHEMA,
    title,
    width: 420,
    height: 420,
    layer: [
      {
        data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
        mark: { type: "line", strokeDash: [4, 4], color: "#999" },
        encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
      },
      ...layers,
    ],
  } as TopLevelSpec;
}

export function rocSpec(curves: { label: string; auroc: number; points: RocPoint[] }[]): TopLevelSpec {
  const values = curves.flatMap((c) =>
    c.points.map((p, order) => ({ series: `${displayName(c.label)} (${Number.isNaN(c.auroc) ? "n/a" : c.auroc.toFixed(3)})`, fpr: p.fpr, tpr: p.tpr, order })),
  );
  return unitSquareChart("ROC curves", [
    {
      data: { values },
      mark: { type: "line", strokeWidth: 1.5 },
      encoding: {
        x: { field: "fpr", type: "quantitative", title: "False positive rate (1 − specificity)", scale: { domain: [0, 1] } },
        y: { field: "tpr", type: "quantitative", title: "True positive rate (sensitivity)", scale: { domain: [0, 1] } },
        color: { field: "series", type: "nominal", title: "Label (AUROC)", scale: { scheme: "category20" }, legend: { labelLimit: 320 } },
        order: { field: "order", type: "quantitative" },
      },
    },
  ]);
}

export function calibrationSpec(rows: { label: string; bins: CalibrationBin[] }[]): TopLevelSpec {
  const values = rows.flatMap((r) => r.bins.map((b) => ({ label: displayName(r.label), predicted: b.meanPredicted, observed: b.observed, n: b.n })));
  return unitSquareChart("Calibration (reliability): mean predicted probability vs observed frequency, 10 bins", [
    // One line per label through its bins in order of predicted probability; points sized by bin count
    // in a separate layer (size on a line mark would split the line).
    {
      data: { values },
      mark: { type: "line", strokeWidth: 1.2 },
      encoding: {
        x: { field: "predicted", type: "quantitative", title: "Mean predicted probability", scale: { domain: [0, 1] } },
        y: { field: "observed", type: "quantitative", title: "Observed frequency", scale: { domain: [0, 1] } },
        color: { field: "label", type: "nominal", title: "Label", scale: { scheme: "category20" } },
        order: { field: "predicted", type: "quantitative" },
      },
    },
    {
      data: { values },
      mark: { type: "point", filled: true },
      encoding: {
        x: { field: "predicted", type: "quantitative" },
        y: { field: "observed", type: "quantitative" },
        color: { field: "label", type: "nominal", scale: { scheme: "category20" } },
        size: { field: "n", type: "quantitative", title: "Images in bin", scale: { range: [15, 250] } },
      },
    },
  ]);
}

export function classFrequencySpec(rows: { label: string; positive: number; negative: number }[]): TopLevelSpec {
  const values = rows.flatMap((r) => [
    { label: displayName(r.label), kind: "positive", frequency: r.positive },
    { label: displayName(r.label), kind: "negative", frequency: r.negative },
  ]);
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: "Class frequencies (fraction of images)",
    width: 420,
    data: { values },
    mark: "bar",
    encoding: {
      y: { field: "label", type: "nominal", title: null, sort: null },
      x: { field: "frequency", type: "quantitative", title: "Frequency", scale: { domain: [0, 1] } },
      color: { field: "kind", type: "nominal", title: null, scale: { domain: ["positive", "negative"], range: ["#d62728", "#1f77b4"] } },
      yOffset: { field: "kind", type: "nominal" },
    },
  } as TopLevelSpec;
}
