/**
 * cxr-triage viewer extension for Cornerstone3D apps (browser module).
 *
 *   const viewport = createStackViewport(div);            // or an existing IStackViewport of the app
 *   await loadStudyImage(viewport, { dicomwebUrl, studyInstanceUid });
 *   const overlay = await attachTriageOverlay(viewport, { apiBaseUrl, token, studyInstanceUid, dicomwebUrl });
 *   createFindingsPanel(panelDiv, { study: overlay.study, onSelect: (l) => overlay.setFinding(l) });
 *   createOverlayControls(controlsDiv, overlay);
 */
export { attachTriageOverlay, type TriageOverlay, type TriageOverlayOptions, type OverlayState } from "./overlay.ts";
export { createFindingsPanel, createOverlayControls, DISCLAIMER, type FindingsPanel, type FindingsPanelOptions } from "./panel.ts";
export { initCornerstone, createStackViewport, enableReadingTools, loadStudyImage, type LoadedImage } from "./image.ts";
export { loadTriageStudy, fetchPluginStudy, fetchSrStudy, parsePluginStudy, srSourceImage, PluginStudyError, type PluginFailure } from "./api.ts";
export { findingsFromSr, groupFindingLabel, isPluginSr, srDevice, PLUGIN_MANUFACTURER } from "./sr.ts";
export { parametricMapsFromSr, heatFromParametricMap, fetchParametricMapHeat, firstMultipartPart, type ParametricMapRef, type MapHeat } from "./pmap.ts";
export { heatColor, heatLut, colorizeHeatmap, DEFAULT_HEAT_THRESHOLD } from "./colormap.ts";
export type { TriageStudy, TriageFinding, TriageModel } from "./types.ts";
