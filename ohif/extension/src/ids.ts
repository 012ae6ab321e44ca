/** The names OHIF joins into module ids ("<extension id>.<module type>.<name>"); the mode refers to them. */
export const EXTENSION_ID = "cxr-triage";
export const PANEL_NAME = "triage";
export const PANEL_ID = `${EXTENSION_ID}.panelModule.${PANEL_NAME}`;
export const MODE_ID = "cxr-triage-mode";
export const MODE_ROUTE = "cxr-triage";
export const MODE_NAME = "Chest X-ray triage";
