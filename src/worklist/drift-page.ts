import type { DriftDay, DriftStatus, QuantityStatus, UnreferencedQuantity } from "../drift/monitor.ts";

/**
 * The /drift page: per quantity, the reference and current distributions as bars, PSI and KS, the
 * alert state, and the per-day PSI. Server-rendered HTML with inline SVG: plots without any script,
 * so the page lives under the same CSP as the worklist (colours come from /assets/drift.css).
 */

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v: number, d = 3) => v.toFixed(d);
/** Element ids: the quantity names hold spaces. */
const slug = (q: string) => q.toLowerCase().replace(/[^a-z0-9]+/g, "-");

const W = 420;
const H = 170;
const PAD = { left: 34, bottom: 46, top: 10, right: 8 };

function yAxis(max: number): string {
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  return [0, max / 2, max].map((v) => `<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}"/><text class="tick" x="${PAD.left - 4}" y="${y(v) + 3}" text-anchor="end">${fmt(v, 2)}</text>`).join("");
}

/** Grouped bars: the reference's share (and the current one) per bin or category. */
export function sharesSvg(title: string, labels: readonly string[], series: { name: string; cls: string; values: readonly number[] }[]): string {
  const max = Math.max(0.05, ...series.flatMap((s) => s.values));
  const plotH = H - PAD.top - PAD.bottom;
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  const bar = (slot * 0.8) / series.length;
  const rects = labels.map((label, i) => {
    const x0 = PAD.left + i * slot + slot * 0.1;
    const bars = series.map((s, j) => {
      const h = (plotH * s.values[i]!) / max;
      return `<rect class="${s.cls}" x="${fmt(x0 + j * bar, 1)}" y="${fmt(PAD.top + plotH - h, 1)}" width="${fmt(bar, 1)}" height="${fmt(h, 1)}"><title>${esc(`${s.name}, ${label}: ${fmt(s.values[i]! * 100, 1)} %`)}</title></rect>`;
    });
    const lx = x0 + slot * 0.4;
    const ly = H - PAD.bottom + 10;
    return `${bars.join("")}<text class="tick" x="${fmt(lx, 1)}" y="${ly}" text-anchor="end" transform="rotate(-35 ${fmt(lx, 1)} ${ly})">${esc(label.length > 16 ? `${label.slice(0, 15)}…` : label)}</text>`;
  });
  const legend = series.map((s, j) => `<rect class="${s.cls}" x="${W - PAD.right - 150 + j * 75}" y="0" width="10" height="8"/><text class="tick" x="${W - PAD.right - 136 + j * 75}" y="8">${esc(s.name)}</text>`).join("");
  return `<svg class="plot shares" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${yAxis(max)}${rects.join("")}${legend}</svg>`;
}

/** PSI per UTC day, with the alert threshold as a dashed line; days with too few studies are marked. */
export function dailySvg(quantity: string, days: readonly DriftDay[], threshold: number): string {
  const psis = days.map((d) => d.quantities[quantity]?.psi);
  const max = Math.max(threshold * 2, ...psis.filter((v): v is number => v !== undefined));
  const plotH = H - PAD.top - PAD.bottom;
  const slot = (W - PAD.left - PAD.right) / Math.max(1, days.length);
  const y = (v: number) => PAD.top + plotH * (1 - v / max);
  const bars = days.map((d, i) => {
    const q = d.quantities[quantity];
    const x = PAD.left + i * slot + slot * 0.15;
    const lx = x + slot * 0.35;
    const ly = H - PAD.bottom + 10;
    const label = `<text class="tick" x="${fmt(lx, 1)}" y="${ly}" text-anchor="end" transform="rotate(-35 ${fmt(lx, 1)} ${ly})">${d.day.slice(5)}</text>`;
    if (!q) return `<text class="tick none" x="${fmt(lx, 1)}" y="${PAD.top + plotH - 2}" text-anchor="middle">–<title>${esc(`${d.day}: ${d.observed} studies, too few to compare`)}</title></text>${label}`;
    return `<rect class="day${q.alert ? " alert" : ""}" x="${fmt(x, 1)}" y="${fmt(y(q.psi), 1)}" width="${fmt(slot * 0.7, 1)}" height="${fmt(PAD.top + plotH - y(q.psi), 1)}"><title>${esc(`${d.day}: PSI ${fmt(q.psi)}${q.ks !== undefined ? `, KS ${fmt(q.ks)}` : ""}${q.pValue !== undefined ? `, chi-square p ${q.pValue.toPrecision(2)}` : ""}, ${q.n} studies${q.alert ? ", alert" : ""}`)}</title></rect>${label}`;
  });
  const line = `<line class="threshold" x1="${PAD.left}" x2="${W - PAD.right}" y1="${fmt(y(threshold), 1)}" y2="${fmt(y(threshold), 1)}"/>`;
  return `<svg class="plot daily" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`${quantity}: PSI per day`)}"><title>${esc(`${quantity}: PSI per day (threshold ${threshold})`)}</title>${yAxis(max)}${bars.join("")}${line}</svg>`;
}

function quantitySection(q: string, s: QuantityStatus, st: DriftStatus): string {
  const ks = s.ks !== undefined ? `KS ${fmt(s.ks)} (critical ${fmt(s.ksCritical!)} at alpha ${st.ksAlpha})` : `chi-square p ${s.pValue!.toPrecision(2)} (alert below ${st.ksAlpha})`;
  return `<section class="quantity${s.alert ? " alert" : ""}" id="q-${slug(q)}" data-quantity="${esc(q)}" data-alert="${s.alert}">
<h2>${esc(q)} <span class="state">${s.alert ? "ALERT" : "within threshold"}</span></h2>
<p class="stats">PSI <span class="psi">${fmt(s.psi)}</span> (alert above ${st.threshold}) · ${ks} · ${s.n} studies in the window</p>
${sharesSvg(`${q}: reference vs current`, s.bins.labels, [{ name: "reference", cls: "ref", values: s.bins.reference }, { name: "current", cls: "cur", values: s.bins.recent }])}
${dailySvg(q, st.days, st.threshold)}
</section>`;
}

function unreferencedSection(q: string, u: UnreferencedQuantity): string {
  const categorical = u.summary.labels[0] !== "min";
  const body = categorical
    ? sharesSvg(`${q}: current`, u.summary.labels, [{ name: "current", cls: "cur", values: u.summary.values }])
    : `<p class="summary">${u.summary.labels.map((l, i) => `${l} ${Number(u.summary.values[i]!.toPrecision(4))}`).join(" · ")}</p>`;
  return `<section class="quantity unreferenced" id="q-${slug(q)}" data-quantity="${esc(q)}"><h2>${esc(q)} <span class="state">${esc(u.reason)}</span></h2><p class="stats">${u.n} studies in the window; no PSI without a reference</p>${body}</section>`;
}

export function renderDriftPage(st: DriftStatus | undefined): string {
  const head = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>cxr-triage drift monitoring</title><link rel="stylesheet" href="/assets/worklist.css"><link rel="stylesheet" href="/assets/drift.css"></head><body>`;
  const back = `<p class="notice"><a href="/">← worklist</a></p>`;
  if (!st) return `${head}<header><h1>Drift monitoring</h1>${back}</header><main><p class="error" id="off">Drift monitoring is off: no reference sample (cxr drift-reference, config drift.reference).</p></main></body></html>`;
  const alerts = st.alerts.length ? `<ul id="alerts" class="alerts">${st.alerts.map((a) => `<li>${esc(a)}</li>`).join("")}</ul>` : `<p id="alerts" class="ok">No alert.</p>`;
  const gate = st.gateFailureRate === null ? "no gate outcome observed" : `gate stopped ${fmt(st.gateFailureRate * 100, 1)} %${Object.keys(st.gateFailures).length ? ` (${Object.entries(st.gateFailures).map(([c, v]) => `${esc(c)} ${fmt(v * 100, 1)} %`).join(", ")})` : ""}`;
  const compared = Object.entries(st.quantities).map(([q, s]) => quantitySection(q, s, st));
  const unref = Object.entries(st.notInReference).map(([q, u]) => unreferencedSection(q, u));
  const waiting = st.observed < st.minSamples ? `<p class="empty">${st.observed} of the ${st.minSamples} studies needed before anything is compared.</p>` : "";
  return `${head}<header><h1>Drift monitoring</h1>${back}
<p class="notice">Reference: ${esc(st.reference)}. Window: last ${st.observed} of up to ${st.window} studies; per day: ${st.days.length} UTC day(s). Alert: PSI &gt; ${st.threshold} and the KS (numeric) or chi-square (categorical) test rejects at alpha ${st.ksAlpha}. ${gate}.</p></header>
<main>${alerts}${waiting}<div class="quantities">${compared.join("")}${unref.join("")}</div></main></body></html>`;
}
