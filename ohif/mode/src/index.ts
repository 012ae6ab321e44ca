/**
 * "Chest X-ray triage" OHIF v3 mode: the default viewer layout with one Cornerstone stack viewport and the
 * cxr-triage panel on the right. Applies to studies with a CR or DX image. Pure data (no React), so its
 * references to the extension are unit-tested.
 */
import { EXTENSION_ID, MODE_ID, MODE_NAME, MODE_ROUTE, PANEL_ID } from "../../extension/src/ids.ts";
import { isChestRadiographStudy } from "../../extension/src/settings.ts";

export const OHIF = {
  layout: "@ohif/extension-default.layoutTemplateModule.viewerLayout",
  stack: "@ohif/extension-default.sopClassHandlerModule.stack",
  viewport: "@ohif/extension-cornerstone.viewportModule.cornerstone",
  studyBrowser: "@ohif/extension-default.panelModule.seriesList",
} as const;

const mode = {
  id: MODE_ID,
  routeName: MODE_ROUTE,
  displayName: MODE_NAME,
  isValidMode: ({ modalities }: { modalities: string }) => isChestRadiographStudy(modalities),
  routes: [{
    path: MODE_ROUTE,
    layoutTemplate: () => ({
      id: OHIF.layout,
      props: {
        leftPanels: [OHIF.studyBrowser],
        rightPanels: [PANEL_ID],
        viewports: [{ namespace: OHIF.viewport, displaySetsToDisplay: [OHIF.stack] }],
      },
    }),
  }],
  extensions: { "@ohif/extension-default": "^3.0.0", "@ohif/extension-cornerstone": "^3.0.0", [EXTENSION_ID]: "^0.1.0" },
  hangingProtocol: "default",
  sopClassHandlers: [OHIF.stack],
};

export default function modeFactory() {
  return mode;
}
export { mode };
