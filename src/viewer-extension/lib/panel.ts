/**
 * Findings panel and overlay controls, plain DOM (no framework) so any Cornerstone3D app can host them.
 * Accessible names are part of the plugin's contract: one button per finding named by its label,
 * a checkbox "Overlay" and a slider "Opacity".
 */
import { displayName } from "../../model/labels.ts";
import { heatColor } from "./colormap.ts";
import type { TriageOverlay } from "./overlay.ts";
import type { TriageStudy } from "./types.ts";

export const DISCLAIMER = "For prioritization only — not for diagnostic use";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;

export interface FindingsPanelOptions {
  study: TriageStudy;
  selected?: string;
  onSelect?: (label: string) => void;
}

export interface FindingsPanel {
  setSelected(label: string | undefined): void;
  destroy(): void;
}

/** The 14 findings sorted by probability, their operating-point flags, the model and the disclaimer. */
export function createFindingsPanel(element: HTMLElement, opts: FindingsPanelOptions): FindingsPanel {
  const { study } = opts;
  const root = el("section", { class: "cxr-findings", "aria-label": "AI triage findings" });
  root.append(el("p", { class: "cxr-banner", role: "note" }, DISCLAIMER));
  if (study.model) {
    const m = el("p", { class: "cxr-model" }, `Model: ${study.model.name} ${study.model.version}`);
    if (study.model.training) m.append(el("span", { class: "cxr-training" }, ` (${study.model.training})`));
    root.append(m);
  }
  root.append(el("p", { class: `cxr-priority${study.priority ? ` priority-${study.priority.level}` : ""}`, "data-priority": study.priority?.level ?? "" },
    study.priority
      ? `Worklist priority: ${study.priority.level.toUpperCase()}${study.priority.reason ? ` — ${study.priority.reason}` : ""}`
      : "Worklist priority: not available (only the plugin ranks studies)"));
  for (const n of study.notes) root.append(el("p", { class: "cxr-note" }, n));
  const list = el("ul", { class: "cxr-finding-list" });
  const buttons = new Map<string, HTMLButtonElement>();
  const sorted = [...study.findings].sort((a, b) => b.probability - a.probability);
  for (const f of sorted) {
    const li = el("li");
    const hasHeatmap = study.heatmaps.some((h) => h.label === f.label);
    const b = el("button", { type: "button", "aria-label": f.label, "aria-pressed": "false", "data-label": f.label, class: f.positive ? "positive" : "negative" });
    b.append(el("span", { class: "name" }, displayName(f.label)), el("span", { class: "prob" }, pct(f.probability)));
    if (f.threshold !== undefined) {
      b.append(el("span", { class: "flag", title: `operating point ${pct(f.threshold)}` }, f.positive ? `▲ ≥ ${pct(f.threshold)}` : `< ${pct(f.threshold)}`));
    } else if (f.positive !== undefined) {
      // The SR states presence at the operating point but not the threshold itself.
      b.append(el("span", { class: "flag", title: "at the model's operating point" }, f.positive ? "▲ present" : "absent"));
    }
    if (!hasHeatmap) b.title = "no heatmap for this finding";
    b.addEventListener("click", () => opts.onSelect?.(f.label));
    buttons.set(f.label, b);
    li.append(b);
    list.append(li);
  }
  root.append(list);
  element.append(root);

  const setSelected = (label: string | undefined) => {
    for (const [l, b] of buttons) b.setAttribute("aria-pressed", String(l === label));
  };
  setSelected(opts.selected);
  return { setSelected, destroy: () => root.remove() };
}

/** "Overlay" checkbox, "Opacity" slider and the colour legend, bound to an overlay. */
export function createOverlayControls(element: HTMLElement, overlay: TriageOverlay): { destroy(): void } {
  const s = overlay.state();
  const root = el("div", { class: "cxr-overlay-controls" });

  const toggleLabel = el("label", { class: "cxr-toggle" });
  const toggle = el("input", { type: "checkbox", id: "cxr-overlay-toggle" });
  toggle.checked = s.visible;
  // Without heatmaps (e.g. results read from the SR) the controls stay visible but inert, saying why.
  const noHeatmaps = overlay.study.heatmaps.length === 0;
  toggle.addEventListener("change", () => overlay.setVisible(toggle.checked));
  toggleLabel.append(toggle, document.createTextNode("Overlay"));

  const sliderLabel = el("label", { class: "cxr-opacity" });
  const slider = el("input", { type: "range", min: "0", max: "100", step: "1", id: "cxr-opacity" });
  slider.value = String(Math.round(s.opacity * 100));
  if (noHeatmaps) {
    for (const c of [toggle, slider]) {
      c.disabled = true;
      c.title = "no heatmaps for this study";
    }
  }
  slider.addEventListener("input", () => overlay.setOpacity(Number(slider.value) / 100));
  sliderLabel.append(document.createTextNode("Opacity"), slider);

  // Legend: the colour ramp, transparent (checkered) below the threshold.
  const legend = el("figure", { class: "cxr-legend" });
  const ramp = el("canvas", { width: "256", height: "12", role: "img", "aria-label": `Heatmap colour scale: transparent below ${s.threshold.toFixed(2)}, blue to red = low to high` });
  const ctx = ramp.getContext("2d")!;
  for (let x = 0; x < 256; x++) {
    const v = x / 255;
    if (v < s.threshold) {
      ctx.fillStyle = (x >> 3) % 2 ? "#555" : "#333";
    } else {
      const [r, g, b] = heatColor(v);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
    }
    ctx.fillRect(x, 0, 1, 12);
  }
  const caption = el("figcaption");
  caption.append(el("span", {}, "low"), el("span", {}, `transparent < ${s.threshold.toFixed(2)}`), el("span", {}, "high"));
  legend.append(ramp, caption);

  root.append(toggleLabel, sliderLabel, legend);
  element.append(root);
  return { destroy: () => root.remove() };
}
