import { describe, expect, it } from "vitest";
import { EXTENSION_ID, PANEL_ID, PANEL_NAME } from "../../ohif/extension/src/ids.ts";
import { isChestRadiographStudy, triageSettings } from "../../ohif/extension/src/settings.ts";
import modeFactory, { OHIF } from "../../ohif/mode/src/index.ts";

describe("OHIF mode and extension (the parts without OHIF itself)", () => {
  it("the mode's layout puts the extension's panel on the right of a Cornerstone stack viewport", () => {
    const mode = modeFactory();
    expect(mode.displayName).toBe("Chest X-ray triage");
    const layout = mode.routes[0]!.layoutTemplate();
    expect(layout.id).toBe(OHIF.layout);
    expect(layout.props.rightPanels).toEqual([PANEL_ID]);
    expect(PANEL_ID).toBe(`${EXTENSION_ID}.panelModule.${PANEL_NAME}`);
    expect(mode.extensions[EXTENSION_ID]).toBeDefined();
    expect(layout.props.viewports[0]!.displaySetsToDisplay).toEqual(mode.sopClassHandlers);
  });

  it("is offered for studies with a CR or DX image only", () => {
    expect(isChestRadiographStudy("DX\\SR\\OT").valid).toBe(true);
    expect(isChestRadiographStudy("CR").valid).toBe(true);
    const ct = isChestRadiographStudy("CT\\SR");
    expect(ct.valid).toBe(false);
    expect(ct.description).toContain("CT, SR");
  });

  it("finds the plugin and the PACS in window.config and the page address", () => {
    expect(triageSettings({ dataSources: [{ configuration: { wadoRoot: "/viewer/dicom-web" } }] }, "https://cxr.example.org/ohif/cxr-triage?StudyInstanceUIDs=1.2&token=t0k"))
      .toEqual({ apiBaseUrl: "", token: "t0k", dicomwebUrl: "/viewer/dicom-web" });
    expect(triageSettings({ cxrTriage: { apiBaseUrl: "https://plugin/", token: "x", dicomwebUrl: "https://pacs/dicom-web" } }, "https://ohif/"))
      .toEqual({ apiBaseUrl: "https://plugin", token: "x", dicomwebUrl: "https://pacs/dicom-web" });
    expect(triageSettings(undefined, "https://ohif/")).toEqual({ apiBaseUrl: "" });
  });
});
