/**
 * The OHIF side panel of the cxr-triage extension: the plugin's own findings panel, overlay controls and
 * heatmap overlay (src/viewer-extension/lib, plain DOM + Cornerstone3D) mounted into OHIF's active
 * Cornerstone stack viewport. Results come from the plugin's API, or, when it is down, from the plugin's
 * SR and Parametric Maps in the PACS (loadTriageStudy). Written with React.createElement (no JSX) so it
 * needs no JSX transform of its own in the host build.
 */
import React from "react";
import { attachTriageOverlay, createFindingsPanel, createOverlayControls, loadTriageStudy, type TriageOverlay } from "../../../src/viewer-extension/lib/index.ts";
import type { Types } from "@cornerstonejs/core";
import { triageSettings } from "./settings.ts";

/** The few OHIF services the panel uses (their OHIF 3.x names). */
interface Services {
  viewportGridService: { getActiveViewportId(): string; getDisplaySetsUIDsForViewport(id: string): string[]; subscribe(event: string, cb: () => void): { unsubscribe(): void }; EVENTS: Record<string, string> };
  displaySetService: { getDisplaySetByUID(uid: string): { StudyInstanceUID: string } | undefined };
  cornerstoneViewportService: { getCornerstoneViewport(id: string): Types.IStackViewport | undefined; subscribe(event: string, cb: () => void): { unsubscribe(): void }; EVENTS: Record<string, string> };
}

declare global {
  interface Window { config?: Parameters<typeof triageSettings>[0] }
}

export function TriagePanel({ servicesManager }: { servicesManager: { services: Services } }) {
  const host = React.useRef<HTMLDivElement>(null);
  const [error, setError] = React.useState<string>();
  const [generation, setGeneration] = React.useState(0);
  const { viewportGridService, displaySetService, cornerstoneViewportService } = servicesManager.services;

  // A new viewport or a new image in it re-attaches the overlay.
  React.useEffect(() => {
    const bump = () => setGeneration((g) => g + 1);
    const subs = [
      viewportGridService.subscribe(viewportGridService.EVENTS.ACTIVE_VIEWPORT_ID_CHANGED, bump),
      cornerstoneViewportService.subscribe(cornerstoneViewportService.EVENTS.VIEWPORT_DATA_CHANGED, bump),
    ];
    return () => subs.forEach((s) => s.unsubscribe());
  }, [viewportGridService, cornerstoneViewportService]);

  React.useEffect(() => {
    let overlay: TriageOverlay | undefined;
    const cleanups: (() => void)[] = [];
    let cancelled = false;
    (async () => {
      const viewportId = viewportGridService.getActiveViewportId();
      const viewport = cornerstoneViewportService.getCornerstoneViewport(viewportId);
      const displaySet = displaySetService.getDisplaySetByUID(viewportGridService.getDisplaySetsUIDsForViewport(viewportId)[0] ?? "");
      if (!viewport || !displaySet || !host.current) return;
      const settings = triageSettings(window.config, location.href);
      const study = await loadTriageStudy({ ...settings, studyInstanceUid: displaySet.StudyInstanceUID });
      if (cancelled) return;
      overlay = await attachTriageOverlay(viewport, { ...settings, studyInstanceUid: displaySet.StudyInstanceUID, study });
      if (cancelled) return overlay.destroy();
      const panelEl = document.createElement("div");
      const controlsEl = document.createElement("div");
      host.current.replaceChildren(controlsEl, panelEl);
      const o = overlay;
      const panel = createFindingsPanel(panelEl, { study, selected: o.state().label, onSelect: (l) => { panel.setSelected(l); void o.setFinding(l); } });
      const controls = createOverlayControls(controlsEl, o);
      cleanups.push(() => panel.destroy(), () => controls.destroy());
      setError(undefined);
    })().catch((e: unknown) => !cancelled && setError((e as Error).message));
    return () => {
      cancelled = true;
      overlay?.destroy();
      cleanups.forEach((c) => c());
    };
  }, [generation, viewportGridService, cornerstoneViewportService, displaySetService]);

  return React.createElement("div", { className: "cxr-triage-ohif-panel", style: { padding: "0.5rem", overflowY: "auto", color: "#ddd", fontSize: "0.85rem" } },
    error ? React.createElement("p", { role: "alert", style: { color: "#ff6b6b" } }, `Triage results unavailable: ${error}`) : null,
    React.createElement("div", { ref: host }));
}
