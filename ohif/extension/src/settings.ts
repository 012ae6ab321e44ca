/**
 * Where the extension finds the plugin and the PACS, from OHIF's app config (window.config) and the page
 * address. Pure (no OHIF, no React), so it is unit-tested in Node.
 *
 *   window.config = {
 *     ...,
 *     cxrTriage: { apiBaseUrl: "https://cxr.example.org" },   // "" = same origin (OHIF served by the plugin at /ohif/)
 *     dataSources: [{ configuration: { wadoRoot: "/viewer/dicom-web", ... } }],
 *   };
 *
 * The API token comes from `cxrTriage.token` or the page's `?token=` (the plugin's pages pass it so);
 * the PACS root for the SR/Parametric Map fallback from `cxrTriage.dicomwebUrl`, else the active data
 * source's wadoRoot.
 */
export interface TriageSettings {
  apiBaseUrl: string;
  token?: string;
  dicomwebUrl?: string;
}

interface AppConfigLike {
  cxrTriage?: { apiBaseUrl?: string; token?: string; dicomwebUrl?: string };
  dataSources?: { configuration?: { wadoRoot?: string } }[];
  defaultDataSourceName?: string;
}

export function triageSettings(appConfig: AppConfigLike | undefined, pageUrl: string): TriageSettings {
  const own = appConfig?.cxrTriage ?? {};
  const token = own.token ?? new URL(pageUrl).searchParams.get("token") ?? undefined;
  const dicomwebUrl = own.dicomwebUrl ?? appConfig?.dataSources?.find((d) => d.configuration?.wadoRoot)?.configuration?.wadoRoot;
  return { apiBaseUrl: (own.apiBaseUrl ?? "").replace(/\/+$/, ""), ...(token ? { token } : {}), ...(dicomwebUrl ? { dicomwebUrl } : {}) };
}

/** The mode applies to studies with a projection radiograph (CR or DX); OHIF passes modalities as "CR\\DX\\SR". */
export function isChestRadiographStudy(modalities: string): { valid: boolean; description: string } {
  const list = modalities.split("\\").map((m) => m.trim().toUpperCase());
  const valid = list.includes("CR") || list.includes("DX");
  return { valid, description: valid ? "chest radiograph triage (CR/DX)" : `the mode needs a CR or DX image; this study has ${list.filter(Boolean).join(", ") || "no modality"}` };
}
