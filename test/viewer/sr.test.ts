/**
 * The viewer's browser-side SR reader (the fallback when the plugin is unreachable) against the
 * project's own TID 1500 SR writer and reader (src/results), on DICOM JSON as WADO-RS returns it.
 */
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { dcmjs } from "../../src/dicom/dcmjs.ts";
import { describe, expect, it } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { loadPresentationImage } from "../../src/image/presentation.ts";
import { deriveResultUids } from "../../src/results/input.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { buildStructuredReport } from "../../src/results/sr/document.ts";
import { findingsFromSr, isPluginSr, labelFromCode, srDevice } from "../../src/viewer-extension/lib/sr.ts";
import type { DicomJson } from "../../src/viewer-extension/lib/dicomweb.ts";
import { colorizeHeatmap, heatColor } from "../../src/viewer-extension/lib/colormap.ts";
import { loadTriageStudy, parsePluginStudy } from "../../src/viewer-extension/lib/api.ts";
import { createDicomwebProxy } from "../../src/viewer-extension/index.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { syntheticCard, syntheticResult } from "../results/synthetic.ts";

const hasData = requireSharedData();

describe.skipIf(!hasData)("SR fallback reader", () => {
  it("reads the findings of the project's TID 1500 SR (test1.dcm) as src/results/sr/read.ts does", async () => {
    const path = join(SHARED_DICOM, "test1.dcm");
    const source = readDicom(path, { withPixelData: false }).dataset;
    const card = syntheticCard();
    const result = syntheticResult(card, { Cardiomegaly: 0.81, Effusion: 0.62, Pleural_Thickening: 0.55, Hernia: 0.2 });
    const sr = buildStructuredReport({
      source,
      image: await loadPresentationImage(path),
      result,
      uids: deriveResultUids([String(source.SOPInstanceUID)], card.deviceUid),
    });
    const json: DicomJson = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(sr);
    const mine = findingsFromSr(json);
    const theirs = readAiResultsSr(sr);
    expect(mine.findings).toHaveLength(14);
    expect(mine.findings.map((f) => [f.label, f.probability, f.positive])).toEqual(theirs.findings.map((f) => [f.label, f.probability, f.positive]));
    expect(mine.findings.find((f) => f.label === "Effusion")).toMatchObject({ probability: 0.62, positive: true });
    expect(mine.findings.find((f) => f.label === "Hernia")).toMatchObject({ probability: 0.2, positive: false });
    expect(mine.model).toEqual({ name: card.name, version: card.version });

    // The device filter of the fallback: this SR is the plugin's (its Software Versions name cxr-triage,
    // though this card's Manufacturer is "cxr-triage tests"); rewritten as another vendor's, it is not.
    expect(srDevice(json)).toMatchObject({ manufacturer: card.manufacturer, deviceObserverUid: card.deviceUid, deviceObserverName: `${card.name} ${card.version}` });
    expect(srDevice(json).contentDateTime).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(isPluginSr(json)).toBe(true);
    expect(isPluginSr(json, { deviceUid: card.deviceUid })).toBe(true);
    expect(isPluginSr(json, { deviceUid: "1.2.3.4" })).toBe(false);
    const foreign: DicomJson = dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
      ...sr,
      Manufacturer: "Other AI Vendor",
      SoftwareVersions: ["4.2"],
      ContributingEquipmentSequence: [{ Manufacturer: "Other AI Vendor", SoftwareVersions: ["4.2"] }],
    });
    expect(findingsFromSr(foreign).findings).toHaveLength(14);
    expect(isPluginSr(foreign)).toBe(false);
  });
});

/** A TID 1500-shaped SR in DICOM JSON with one finding, as `manufacturer` would write it. */
function srJson(sop: string, manufacturer: string, contentDate: string, probability: number): DicomJson {
  const code = (value: string, scheme: string, meaning: string) => ({ vr: "SQ", Value: [{ "00080100": { vr: "SH", Value: [value] }, "00080102": { vr: "SH", Value: [scheme] }, "00080104": { vr: "LO", Value: [meaning] } }] });
  return {
    "00080018": { vr: "UI", Value: [sop] },
    "00080070": { vr: "LO", Value: [manufacturer] },
    "00080023": { vr: "DA", Value: [contentDate] },
    "00080033": { vr: "TM", Value: ["101500"] },
    "0040A730": { vr: "SQ", Value: [
      { "0040A040": { vr: "CS", Value: ["TEXT"] }, "0040A043": code("121013", "DCM", "Device Observer Name"), "0040A160": { vr: "UT", Value: [`${manufacturer} model 1.0`] } },
      { "0040A040": { vr: "CS", Value: ["CONTAINER"] }, "0040A043": code("126010", "DCM", "Imaging Measurements"), "0040A730": { vr: "SQ", Value: [{
        "0040A040": { vr: "CS", Value: ["CONTAINER"] }, "0040A043": code("125007", "DCM", "Measurement Group"), "0040A730": { vr: "SQ", Value: [
          { "0040A040": { vr: "CS", Value: ["CODE"] }, "0040A043": code("121071", "DCM", "Finding"), "0040A168": code("4147007", "SCT", "Mass") },
          { "0040A040": { vr: "CS", Value: ["NUM"] }, "0040A043": code("122157", "DCM", "Probability"), "0040A300": { vr: "SQ", Value: [{ "0040A30A": { vr: "DS", Value: [probability] }, "004008EA": code("1", "UCUM", "no units") }] } },
        ] },
      }] } },
    ] },
  };
}

describe("SR fallback: only this plugin's SR, and why the plugin gave none", () => {
  it("skips a newer SR of another vendor and names the plugin's failure (404, 401, unreachable)", async () => {
    const study = "1.2.826.0.1.3680043.8.498.1";
    const reports = [srJson("1.2.3.1", "cxr-triage", "20261101", 0.7), srJson("1.2.3.2", "Other AI Vendor", "20261120", 0.99)];
    let pluginStatus = 404;
    const server = createServer((req, res) => {
      const url = req.url!;
      if (url.startsWith("/api/")) return void res.writeHead(pluginStatus, { "content-type": "application/json" }).end("{}");
      if (url.endsWith("/series?Modality=SR")) return void res.writeHead(200, { "content-type": "application/dicom+json" }).end(JSON.stringify([{ "0020000E": { vr: "UI", Value: ["1.2.3"] } }]));
      if (url.endsWith("/series/1.2.3/metadata")) return void res.writeHead(200, { "content-type": "application/dicom+json" }).end(JSON.stringify(reports));
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const opts = { apiBaseUrl: base, studyInstanceUid: study, dicomwebUrl: `${base}/dicom-web`, token: "t" };
    try {
      const notFound = await loadTriageStudy(opts);
      expect(notFound.origin).toBe("pacs-sr");
      expect(notFound.srSopInstanceUid).toBe("1.2.3.1");
      expect(notFound.findings).toEqual([{ label: "Mass", probability: 0.7 }]);
      expect(notFound.notes[0]).toMatch(/^No results from the plugin yet for this study \(.*HTTP 404/);
      expect(notFound.notes[1]).toContain("Structured Report 1.2.3.1 in the PACS, written by cxr-triage model 1.0 (cxr-triage), content date 2026-11-01 10:15:00");
      pluginStatus = 401;
      expect((await loadTriageStudy(opts)).notes[0]).toMatch(/^The plugin refused the API token \(.*HTTP 401/);
      pluginStatus = 503;
      expect((await loadTriageStudy(opts)).notes[0]).toMatch(/^Plugin not reachable \(.*HTTP 503/);
      // Without the plugin's SR, the other vendor's SR is not shown.
      reports.shift();
      await expect(loadTriageStudy(opts)).rejects.toThrow(/no triage SR with findings written by this plugin \(Manufacturer cxr-triage\).*1 SR\(s\) of other devices skipped/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("viewer pure helpers", () => {
  it("maps finding codes and meanings to the card's labels", () => {
    expect(labelFromCode("60046008", "SCT", "Pleural effusion")).toBe("Effusion");
    expect(labelFromCode(undefined, undefined, "Pleural thickening")).toBe("Pleural_Thickening");
    expect(labelFromCode("1", "99X", "Something else")).toBe("Something else");
  });

  it("colours heat blue→red and leaves heat below the threshold transparent", () => {
    expect(heatColor(0)).toEqual([0, 0, 255]);
    expect(heatColor(1)).toEqual([255, 0, 0]);
    const rgba = colorizeHeatmap(Uint8Array.from([0, 70, 77, 255]), 0.3);
    expect([rgba[3], rgba[7], rgba[11], rgba[15]]).toEqual([0, 0, 255, 255]); // 77/255 ≥ 0.3 > 70/255
    expect([rgba[12], rgba[13], rgba[14]]).toEqual([255, 0, 0]);
  });

  it("takes the worklist priority and its reason from the plugin's study answer", () => {
    const s = parsePluginStudy({ findings: [{ label: "Mass", probability: 0.7 }], priority: "urgent", reason: "Mass 70% ≥ 50%" }, "1.2.3", "http://plugin");
    expect(s.priority).toEqual({ level: "urgent", reason: "Mass 70% ≥ 50%" });
    expect(parsePluginStudy({ findings: [{ label: "Mass", probability: 0.7 }] }, "1.2.3", "http://plugin").priority).toBeUndefined();
  });

  it("rejects a study answer without findings, naming the study", () => {
    expect(() => parsePluginStudy({ state: "processing" }, "1.2.3", "http://plugin")).toThrow(/study 1\.2\.3: no findings yet \(state processing\)/);
    expect(() => parsePluginStudy({ state: "queued", findings: [] }, "1.2.3", "http://plugin")).toThrow(/no findings yet \(state queued\)/);
    const s = parsePluginStudy(
      { findings: [{ label: "Mass", probability: 0.7, threshold: 0.5, positive: true }], heatmaps: [{ label: "Mass", url: "/api/studies/1.2.3/heatmaps/Mass.png" }], model: { name: "m", version: "1", training: "untrained" } },
      "1.2.3",
      "http://plugin:8080",
    );
    expect(s.heatmaps[0]!.url).toBe("http://plugin:8080/api/studies/1.2.3/heatmaps/Mass.png");
    expect(s.model).toEqual({ name: "m", version: "1", training: "untrained" });
  });
});

describe("DICOMweb proxy", () => {
  it("forwards GETs below the root with Accept, and nothing outside it (also percent-encoded dot segments)", async () => {
    const seen: { url: string; accept: string | undefined }[] = [];
    const upstream = createServer((req, res) => {
      seen.push({ url: req.url!, accept: req.headers.accept });
      res.writeHead(200, { "content-type": "application/dicom+json" }).end("[]");
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const proxy = createServer(createDicomwebProxy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/dicom-web/`));
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const ok = await fetch(`${base}/studies/1.2.3/series?Modality=SR`, { headers: { Accept: "application/dicom+json" } });
      expect([ok.status, await ok.text()]).toEqual([200, "[]"]);
      expect(seen).toEqual([{ url: "/dicom-web/studies/1.2.3/series?Modality=SR", accept: "application/dicom+json" }]);
      // Sent as raw request targets (fetch would normalise the dot segments before sending).
      const rawGet = (path: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request({ host: "127.0.0.1", port: (proxy.address() as AddressInfo).port, path }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          });
          req.on("error", reject);
          req.end();
        });
      for (const bad of ["/../system", "/%2e%2e/instances", "/studies/%2E%2E/%2e%2e/system"]) expect(await rawGet(bad)).toBe(400);
      expect((await fetch(`${base}/studies`, { method: "POST", body: "x" })).status).toBe(405);
      expect(seen).toHaveLength(1);
    } finally {
      await new Promise((r) => proxy.close(r));
      await new Promise((r) => upstream.close(r));
    }
  });

  it("ends the response and reports it when the PACS breaks off a body midway, and says so when the PACS is unreachable", async () => {
    // Announces 1000 bytes, sends 10, then drops the connection.
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/dicom", "content-length": "1000" });
      res.write(Buffer.alloc(10), () => res.socket!.destroy());
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const errors: string[] = [];
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const proxy = createServer(createDicomwebProxy(`http://127.0.0.1:${upstreamPort}/dicom-web`, { onError: (m) => errors.push(m) }));
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const r = await fetch(`${base}/studies/1.2.3/instances/4.5.6`);
      expect(r.status).toBe(200);
      await expect(r.arrayBuffer()).rejects.toThrow();
      await expect.poll(() => errors).toEqual([expect.stringContaining(`http://127.0.0.1:${upstreamPort}/dicom-web/studies/1.2.3/instances/4.5.6: body broke off`)]);
      await new Promise((r) => upstream.close(r));
      const down = await fetch(`${base}/studies`);
      expect(down.status).toBe(502);
      expect(await down.text()).toContain(`PACS DICOMweb http://127.0.0.1:${upstreamPort}/dicom-web not reachable`);
      expect(errors).toHaveLength(2);
    } finally {
      await new Promise((r) => proxy.close(r));
      if (upstream.listening) await new Promise((r) => upstream.close(r));
    }
  });
});
