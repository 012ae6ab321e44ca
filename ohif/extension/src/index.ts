/**
 * cxr-triage OHIF v3 extension: one panel module ("triage") with the 14 findings by probability, their
 * operating points, the model and its training line, the worklist priority, the disclaimer banner, and the
 * heatmap overlay (on/off, opacity) of the selected finding over the active Cornerstone viewport.
 */
import { EXTENSION_ID, PANEL_NAME } from "./ids.ts";
import { TriagePanel } from "./TriagePanel.ts";

const extension = {
  id: EXTENSION_ID,
  getPanelModule({ servicesManager }: { servicesManager: Parameters<typeof TriagePanel>[0]["servicesManager"] }) {
    return [{
      name: PANEL_NAME,
      iconName: "tab-linear",
      iconLabel: "Triage",
      label: "Chest X-ray triage",
      component: () => TriagePanel({ servicesManager }),
    }];
  },
};

export default extension;
export { EXTENSION_ID, PANEL_ID, MODE_ID, MODE_NAME, MODE_ROUTE } from "./ids.ts";
