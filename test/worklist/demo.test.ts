import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { prepareDemoFiles } from "../../src/cli/commands/demo.ts";
import { GATE_DEMO_CASES } from "../../src/gate/demo-cases.ts";
import type { ApiStudy } from "../../src/worklist/server.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { interrupt, spawnCxr, waitFor } from "./serve-process.ts";

const TOKEN = "demo-token-0123456789abcdef";

describe.runIf(requireSharedData())("cxr demo", () => {
  const tmp = tempDir("cxr-demo-test-");
  afterAll(() => tmp.cleanup());

  it("gives test4-6, the MONOCHROME1 RSNA copy and the gate cases UIDs of their own, derived from the file name", () => {
    const a = prepareDemoFiles(SHARED_DICOM, join(tmp.dir, "a"));
    const b = prepareDemoFiles(SHARED_DICOM, join(tmp.dir, "b"));
    expect(a.map((i) => i.studyInstanceUid)).toEqual(b.map((i) => i.studyInstanceUid));
    expect(new Set(a.map((i) => i.studyInstanceUid)).size).toBe(11);
    expect(a.filter((i) => i.note).map((i) => i.file)).toEqual(["test4.dcm", "test5.dcm", "test6.dcm", "rsna_cr_jpeg_baseline_fake_monochrome1.dcm", ...GATE_DEMO_CASES.map((c) => c.file)]);
    expect(a.find((i) => i.file === "test1.dcm")!.path).toBe(join(SHARED_DICOM, "test1.dcm"));
  });

  it("runs Orthanc + the plugin, routes the shared chest files through it, and stops cleanly on Ctrl-C", async () => {
    const dataDir = join(tmp.dir, "demo");
    const log = join(tmp.dir, "demo.log");
    const { child, output } = spawnCxr(["demo", "--data-dir", dataDir, "--http-port", "0", "--no-browser", "--api-token", TOKEN], log);
    try {
      const worklistUrl = await waitFor("the worklist URL", 180_000, () => /^worklist: (\S+)$/m.exec(output())?.[1], log);
      const orthancUrl = /^PACS: Orthanc (\S+) /m.exec(output())![1]!;
      expect(worklistUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/\\?token=${TOKEN}$`));
      const api = new URL(worklistUrl).origin;

      const instances = prepareDemoFiles(SHARED_DICOM, join(tmp.dir, "expected"));
      const uidOf = (file: string) => instances.find((i) => i.file === file)!.studyInstanceUid;
      const final = new Set(["exported", "failed", "rejected"]);
      const studies = await waitFor(
        "every demo study to be exported or rejected",
        300_000,
        async () => {
          const r = await fetch(`${api}/api/studies`, { headers: { Authorization: `Bearer ${TOKEN}` } });
          const list = (await r.json()) as ApiStudy[];
          return instances.every((i) => final.has(list.find((s) => s.studyInstanceUid === i.studyInstanceUid)?.state ?? "")) ? list : undefined;
        },
        log,
      );
      const byFile = (file: string) => studies.find((s) => s.studyInstanceUid === uidOf(file))!;
      for (const file of ["test1.dcm", "test2.dcm", "test3.dcm", "rsna_cr_jpeg_baseline.dcm"]) {
        expect(byFile(file).state, `${file}: ${byFile(file).reason}`).toBe("exported");
        expect(byFile(file).findings).toHaveLength(14);
      }
      for (const file of ["test4.dcm", "test5.dcm", "test6.dcm"]) {
        expect(byFile(file).state, file).toBe("rejected");
        expect(byFile(file).priority).toBe("review");
        expect(byFile(file).reason).toMatch(/^rejected: \S.+/);
      }
      // The fake MONOCHROME1 copy displays as a negative: the image gate stops it before triage.
      const mono1 = byFile("rsna_cr_jpeg_baseline_fake_monochrome1.dcm");
      expect(mono1).toMatchObject({ state: "rejected", priority: "review", reason: expect.stringMatching(/^not analysed: inverted polarity .* — read without AI$/) });
      expect(mono1.findings ?? []).toEqual([]);
      // …and so does it the hip CR sent as chest, a rotated and a near-blank film, each with its reason.
      for (const c of GATE_DEMO_CASES) {
        const s = byFile(c.file);
        expect(s.state, `${c.file}: ${s.reason}`).toBe("rejected");
        expect(s.priority).toBe("review");
        expect(s.reason.replace(/^not analysed: /, "")).toMatch(c.expected);
      }
      // The results went back to the PACS: one SR series per triaged study.
      const srs = (await (await fetch(`${orthancUrl}/tools/find`, { method: "POST", body: JSON.stringify({ Level: "Series", Query: { Modality: "SR" } }) })).json()) as string[];
      expect(srs).toHaveLength(4);
      // The service's stages fed the Prometheus metrics the API serves.
      const metrics = await (await fetch(`${api}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
      expect(value("cxr_instances_received_total")).toBeGreaterThanOrEqual(8);
      expect(value("cxr_inference_seconds_count")).toBeGreaterThanOrEqual(4);
      expect(value("cxr_study_latency_seconds_count")).toBeGreaterThanOrEqual(4);
      expect(metrics).toMatch(/^cxr_exports_total\{destination="ORTHANC@127\.0\.0\.1:\d+"\} ([1-9]\d*)$/m);
      expect(metrics).toMatch(/^cxr_studies\{state="rejected"\} 7$/m);
      expect(metrics).toMatch(/^cxr_gate_failures_total\{check="inverted"\} 1$/m);
      // Still up (it stays until Ctrl-C), and the page is served with the printed URL.
      expect(child.exitCode).toBeNull();
      // The printed URL's token is traded for a session cookie and a redirect to the page without it.
      const login = await fetch(worklistUrl, { redirect: "manual" });
      expect([login.status, login.headers.get("location")]).toEqual([303, "/"]);
      const page = await fetch(new URL("/", worklistUrl), { headers: { Cookie: login.headers.get("set-cookie")!.split(";")[0]! } });
      expect(page.status).toBe(200);

      const { code, signal } = await interrupt(child);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(output()).toMatch(/stopping the plugin and Orthanc/);
      await expect(fetch(`${orthancUrl}/system`)).rejects.toThrow();
      await expect(fetch(`${api}/healthz`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null && child.signalCode === null) await interrupt(child, 5_000);
    }
  }, 600_000);
});
