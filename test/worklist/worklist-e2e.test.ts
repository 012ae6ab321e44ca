import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { SOP_CLASS } from "../../src/config/service.ts";
import { priorityConfigSchema } from "../../src/config/worklist.ts";
import { findingCode } from "../../src/model/labels.ts";
import { freePort } from "../../src/peers/ports.ts";
import { prioritize } from "../../src/worklist/priority.ts";
import type { ApiStudyDetail } from "../../src/worklist/server.ts";
import type { StudyRecord } from "../../src/worklist/study.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { writePart10 } from "../../src/dicom/write.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { CXR_BIN, interrupt, spawnCxr, waitFor } from "./serve-process.ts";

const TOKEN = "e2e-token-0123456789abcdef";
const TEST2_STUDY = "1.3.6.1.4.1.11129.5.5.111396399361969898205364400549799252857604";
const TEST5_STUDY = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708"; // test5.dcm: modality CT

// The Must-show of the worklist: a real `cxr serve` with a model from `cxr model init`, a study sent by
// dcmtk storescu, and the row appearing on the open page with its priority, without a reload.
describe.runIf(requireSharedData())("worklist page on a running service", () => {
  const tmp = tempDir("cxr-worklist-e2e-");
  const log = join(tmp.dir, "serve.log");
  let service: ChildProcess;
  let browser: Browser;
  let base: string;
  let dicomPort: number;

  beforeAll(async () => {
    execFileSync(process.execPath, [CXR_BIN, "model", "init", "--seed", "1", "--input-size", "224", "--out", join(tmp.dir, "model")]);
    // One image per study: start it when the association ends rather than after the stable age. The
    // shared chest files are Secondary Capture objects, which the default configuration does not take.
    const configPath = join(tmp.dir, "cxr.json");
    const dicom = { acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE] };
    writeFileSync(configPath, JSON.stringify({ dicom, intake: { singleImageImmediately: true }, pipeline: { concurrency: 1 } }));
    dicomPort = await freePort();
    const httpPort = await freePort();
    base = `http://127.0.0.1:${httpPort}`;
    ({ child: service } = spawnCxr(
      ["serve", "--config", configPath, "--data-dir", join(tmp.dir, "data"), "--model", join(tmp.dir, "model"), "--port", String(dicomPort), "--ae-title", "CXR_TRIAGE", "--http-port", String(httpPort), "--api-token", TOKEN],
      log,
    ));
    await waitFor("cxr serve to answer /healthz", 120_000, async () => ((await fetch(`${base}/healthz`).catch(() => undefined))?.ok ? true : undefined), log);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    if (service) {
      const { code } = await interrupt(service);
      expect(code).toBe(0);
    }
    tmp.cleanup();
  });

  it("shows a study sent by storescu with its priority, live, and a rejected one with its reason", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 420 } });
    await page.goto(`${base}/?token=${TOKEN}`);
    await page.waitForSelector("#live.on");
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    expect(await page.locator("tbody tr").count()).toBe(0);

    execFileSync("storescu", ["-aec", "CXR_TRIAGE", "127.0.0.1", String(dicomPort), join(SHARED_DICOM, "test2.dcm"), join(SHARED_DICOM, "test5.dcm")]);

    const row = page.locator(`tr[data-uid="${TEST2_STUDY}"][data-state="done"]`);
    await row.waitFor({ timeout: 120_000 });
    const detail = (await (await fetch(`${base}/api/studies/${TEST2_STUDY}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as ApiStudyDetail;
    expect(detail.findings).toHaveLength(14);
    // The priority the page shows is the one the findings give under the default configuration.
    const record: StudyRecord = {
      studyInstanceUid: detail.studyInstanceUid,
      state: detail.state,
      history: detail.history,
      receivedAt: detail.receivedAt,
      updatedAt: detail.updatedAt,
      findings: detail.findings.map((f) => ({ ...f, code: findingCode(f.label) })),
    };
    const expected = prioritize(record, priorityConfigSchema.parse({}));
    expect(await row.getAttribute("data-priority")).toBe(expected.priority);
    expect(await row.locator(".reason").textContent()).toBe(expected.reason);
    expect(detail.heatmaps.length).toBeGreaterThan(0);

    const rejected = page.locator(`tr[data-uid="${TEST5_STUDY}"][data-state="rejected"]`);
    await rejected.waitFor({ timeout: 60_000 });
    expect(await rejected.getAttribute("data-priority")).toBe("review");
    expect(await rejected.locator(".reason").textContent()).toMatch(/^rejected: .+ — not triaged, read without AI$/);

    // Same document all along: the rows came over the WebSocket.
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    expect(await page.locator("#model").textContent()).toMatch(/NOT FOR CLINICAL USE — Model .* untrained — random weights/);
    await page.screenshot({ path: artifactPath("worklist-e2e.png"), fullPage: true });
    await page.close();
  });

  it("keeps every component group of an ISO_IR 192 name from storescu to the API and the page; the page's address loses the token", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 420 } });
    await page.goto(`${base}/?token=${TOKEN}`);
    expect(page.url()).toBe(`${base}/`);
    await page.waitForSelector("#live.on");
    // test2 as a new study of a Japanese patient (the writer declares ISO_IR 192 for the UTF-8 text).
    const file = readDicom(join(SHARED_DICOM, "test2.dcm"));
    const study = "2.25.313131313131313131";
    const path = join(tmp.dir, "yamada.dcm");
    writePart10(
      {
        ...file.dataset,
        PatientName: [{ Alphabetic: "Yamada^Tarou", Ideographic: "山田^太郎", Phonetic: "やまだ^たろう" }],
        StudyInstanceUID: study,
        SeriesInstanceUID: `${study}.1`,
        SOPInstanceUID: `${study}.1.1`,
      },
      path,
    );
    execFileSync("storescu", ["-aec", "CXR_TRIAGE", "127.0.0.1", String(dicomPort), path]);
    const row = page.locator(`tr[data-uid="${study}"]`);
    await row.waitFor({ timeout: 60_000 });
    const detail = (await (await fetch(`${base}/api/studies/${study}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as ApiStudyDetail;
    expect(detail.patientName).toBe("Yamada^Tarou=山田^太郎=やまだ^たろう");
    expect(await row.locator("td").nth(5).textContent()).toMatch(/^Yamada, Tarou = 山田 太郎 = やまだ たろう( · |$)/);
    await page.close();
  });
});
