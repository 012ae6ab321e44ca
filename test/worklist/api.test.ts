import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { PNG } from "pngjs";
import { pino } from "pino";
import WebSocket from "ws";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer, type ApiStudy, type ApiStudyDetail } from "../../src/worklist/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { MemoryStudyStore, study } from "./memory-store.ts";

const TOKEN = "test-token-0123456789abcdef";
const auth = { Authorization: `Bearer ${TOKEN}` };

describe("worklist API", () => {
  const tmp = tempDir("cxr-worklist-");
  const store = new MemoryStudyStore();
  const metrics = createMetrics({ defaultMetrics: false });
  let api: ApiServer;
  let base: string;
  const heatmapPath = join(tmp.dir, "pneumothorax.png");
  const viewerDir = join(tmp.dir, "viewer");
  // Stands in for the PACS's DICOMweb root behind the viewer's proxy.
  let pacs: Server;
  let pacsUrl: string;

  beforeAll(async () => {
    pacs = createServer((req, res) => res.writeHead(200, { "content-type": "application/dicom+json" }).end(JSON.stringify([{ path: req.url }])));
    await new Promise<void>((r) => pacs.listen(0, "127.0.0.1", r));
    pacsUrl = `http://127.0.0.1:${(pacs.address() as { port: number }).port}/dicom-web/`;
    const png = new PNG({ width: 4, height: 3 });
    png.data.fill(200);
    writeFileSync(heatmapPath, PNG.sync.write(png));
    mkdirSync(join(viewerDir, "assets"), { recursive: true });
    writeFileSync(join(viewerDir, "index.html"), "<!doctype html><title>viewer</title>");
    writeFileSync(join(viewerDir, "assets", "viewer.js"), "console.log(1)");

    store.put(study("1.1", { receivedAt: "2026-11-25T10:00:00.000Z", probs: { Cardiomegaly: 0.2, Pneumothorax: 0.2 } }));
    store.put(
      study("1.2", {
        receivedAt: "2026-11-26T10:00:00.000Z",
        state: "exported",
        probs: { Cardiomegaly: 0.3, Pneumothorax: 0.91 },
        thresholds: { Pneumothorax: 0.42 },
        patientName: "Doe^Jane",
        patientId: "PID-7",
        heatmaps: [{ label: "Pneumothorax", path: heatmapPath }],
        outputs: { sr: "2.25.100", sc: ["2.25.101"], pm: ["2.25.102"] },
        model: { name: "cxr-densenet121", version: "0.1", deviceUid: "2.25.9", training: "untrained — random weights" },
        processedBy: "node-2",
      }),
    );
    store.put(study("1.3", { receivedAt: "2026-11-27T10:00:00.000Z", probs: { Cardiomegaly: 0.8 } }));
    store.put(study("1.4", { receivedAt: "2026-11-27T11:00:00.000Z", state: "rejected", reason: "Modality CT is not DX/CR" }));
    store.put(study("1.5", { receivedAt: "2026-11-27T12:00:00.000Z", state: "queued" }));

    api = createApiServer({
      store,
      config: {
        api: apiConfigSchema.parse({ tokens: [TOKEN], pacsDicomWebUrl: pacsUrl }),
        priority: priorityConfigSchema.parse({}),
        export: { destinations: [{ name: "pacs", password: "hunter2-secret" }] },
      },
      metrics,
      logger: pino({ level: "silent" }),
      viewerDir,
    });
    base = (await api.listen(0, "127.0.0.1")).url;
  });
  afterAll(async () => {
    await api?.close();
    pacs?.close();
    tmp.cleanup();
  });

  const get = (path: string, headers: Record<string, string> = auth) => fetch(`${base}${path}`, { headers });

  it("refuses to start without a bearer token configured", () => {
    expect(() =>
      createApiServer({ store, config: { api: apiConfigSchema.parse({}), priority: priorityConfigSchema.parse({}) }, metrics: createMetrics({ defaultMetrics: false }), logger: pino({ level: "silent" }) }),
    ).toThrow(/api.tokens is empty/);
  });

  it("GET /healthz answers without a token", async () => {
    const r = await get("/healthz", {});
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ status: "ok", studies: 5 });
  });

  it("GET /metrics serves Prometheus text without a token, with the store's state counts", async () => {
    metrics.queueDepth.set(3);
    const r = await get("/metrics", {});
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await r.text();
    expect(text).toContain("cxr_queue_depth 3");
    expect(text).toContain('cxr_studies{state="done"} 2');
    expect(text).toContain('cxr_studies{state="rejected"} 1');
    expect(text).toContain("# TYPE cxr_inference_seconds histogram");
    expect(text).toContain("# TYPE cxr_export_failures_total counter");
  });

  it("counts API requests by route pattern, not by study", async () => {
    await get("/api/studies/1.2");
    const text = await (await get("/metrics", {})).text();
    expect(text).toMatch(/cxr_http_request_duration_seconds_count\{method="GET",route="\/api\/studies\/:uid",status="200"\} \d+/);
    expect(text).not.toContain('route="/api/studies/1.2"');
  });

  it.each([
    ["no token", {}, /missing bearer token/],
    ["a wrong token", { Authorization: "Bearer wrong-token-0123456789" }, /invalid bearer token/],
    ["a malformed header", { Authorization: `Basic ${TOKEN}` }, /invalid bearer token/],
  ])("GET /api/studies with %s is 401 with a JSON error", async (_name, headers, message) => {
    const r = await get("/api/studies", headers as Record<string, string>);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await r.json()).error).toMatch(message);
  });

  it("GET /api/studies lists every study in worklist order with the contract's fields", async () => {
    const r = await get("/api/studies");
    expect(r.status).toBe(200);
    const list = (await r.json()) as ApiStudy[];
    // urgent 1.2; review 1.3 (score 0.8), then 1.4 (rejected, score 0); routine 1.1 (score 0.4), 1.5 (queued, 0)
    expect(list.map((s) => [s.studyInstanceUid, s.priority])).toEqual([
      ["1.2", "urgent"],
      ["1.3", "review"],
      ["1.4", "review"],
      ["1.1", "routine"],
      ["1.5", "routine"],
    ]);
    const top = list[0]!;
    expect(top).toMatchObject({ state: "exported", score: 1.82, reason: "Pneumothorax 0.91 ≥ 0.42", receivedAt: "2026-11-26T10:00:00.000Z" });
    expect(top.findings).toEqual([
      { label: "Cardiomegaly", probability: 0.3, threshold: 0.5, positive: false },
      { label: "Pneumothorax", probability: 0.91, threshold: 0.42, positive: true },
    ]);
    expect(list[2]!.reason).toBe("rejected: Modality CT is not DX/CR — not triaged, read without AI");
  });

  it("accepts the token as ?token= (links, images, the page)", async () => {
    const r = await get(`/api/studies?token=${TOKEN}`, {});
    expect(r.status).toBe(200);
  });

  it.each([
    ["state=rejected,queued", ["1.4", "1.5"]],
    ["state=done&state=exported", ["1.2", "1.3", "1.1"]],
    ["priority=review", ["1.3", "1.4"]],
    ["finding=Pneumothorax", ["1.2"]],
    ["finding=Cardiomegaly&priority=review", ["1.3"]],
    ["from=2026-11-26&to=2026-11-26", ["1.2"]],
    ["from=2026-11-27T10:30:00Z", ["1.4", "1.5"]],
    ["sort=receivedAt", ["1.5", "1.4", "1.3", "1.2", "1.1"]],
    ["sort=receivedAt&order=asc", ["1.1", "1.2", "1.3", "1.4", "1.5"]],
    ["sort=score", ["1.2", "1.3", "1.1", "1.4", "1.5"]],
  ])("GET /api/studies?%s filters and sorts", async (query, uids) => {
    const list = (await (await get(`/api/studies?${query}`)).json()) as ApiStudy[];
    expect(list.map((s) => s.studyInstanceUid)).toEqual(uids);
  });

  it.each([
    ["state=finished", /state 'finished' is not one of received, queued/],
    ["priority=high", /priority 'high' is not one of urgent, review, routine/],
    ["finding=Fracture", /finding 'Fracture' is not one of Cardiomegaly/],
    ["from=yesterday", /from 'yesterday' is not a date/],
    ["to=2026-13-45", /to '2026-13-45' is not a date/],
    ["sort=name", /sort 'name' is not one of priority, score, receivedAt, updatedAt/],
    ["order=up", /order 'up' is not asc or desc/],
    ["limit=3", /unknown query parameter\(s\) limit/],
  ])("GET /api/studies?%s is 400 with a clear message", async (query, message) => {
    const r = await get(`/api/studies?${query}`);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: string };
    expect(body.error).toMatch(/^invalid query: /);
    expect(body.error).toMatch(message);
  });

  it("GET /api/studies/<uid> gives the element plus heatmap URLs and PACS links of its SR/SC", async () => {
    const r = await get("/api/studies/1.2");
    expect(r.status).toBe(200);
    const d = (await r.json()) as ApiStudyDetail;
    expect(d).toMatchObject({ studyInstanceUid: "1.2", priority: "urgent", patientName: "Doe^Jane", processedBy: "node-2", viewerUrl: "/viewer/?studyInstanceUid=1.2" });
    expect(d.heatmaps).toEqual([{ label: "Pneumothorax", url: "/api/studies/1.2/heatmaps/Pneumothorax.png" }]);
    expect(d.outputs).toEqual({ sr: "2.25.100", sc: ["2.25.101"], pm: ["2.25.102"] });
    expect(d.pacs).toEqual({
      sr: `${pacsUrl}studies/1.2/instances?SOPInstanceUID=2.25.100`,
      sc: [`${pacsUrl}studies/1.2/instances?SOPInstanceUID=2.25.101`],
      pm: [`${pacsUrl}studies/1.2/instances?SOPInstanceUID=2.25.102`],
    });
    expect((await get("/api/studies/1.2", {})).status).toBe(401);
  });

  it("GET /api/studies/<unknown> is 404 naming the study", async () => {
    const r = await get("/api/studies/9.9.9");
    expect(r.status).toBe(404);
    expect((await r.json()).error).toBe("study 9.9.9 is not on the worklist");
  });

  it("serves a heatmap PNG from the study's record, and 404s for a label without one", async () => {
    const r = await get("/api/studies/1.2/heatmaps/Pneumothorax.png");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("image/png");
    const png = PNG.sync.read(Buffer.from(await r.arrayBuffer()));
    expect([png.width, png.height]).toEqual([4, 3]);
    const missing = await get("/api/studies/1.2/heatmaps/Effusion.png");
    expect(missing.status).toBe(404);
    expect((await missing.json()).error).toMatch(/has no heatmap for 'Effusion'/);
    expect((await get("/api/studies/1.2/heatmaps/Pneumothorax.png", {})).status).toBe(401);
  });

  it("GET /api/config shows the effective configuration with secrets hidden", async () => {
    const r = await get("/api/config");
    const cfg = await r.json();
    expect(cfg.api.tokens).toEqual(["[hidden]"]);
    expect(cfg.export.destinations[0]).toEqual({ name: "pacs", password: "[hidden]" });
    expect(cfg.priority.findings.Pneumothorax).toEqual({ weight: 2 });
    expect(JSON.stringify(cfg)).not.toContain(TOKEN);
    expect((await get("/api/config", {})).status).toBe(401);
  });

  it("GET /api/model falls back to the newest study's model", async () => {
    const r = await get("/api/model");
    expect(await r.json()).toEqual({ name: "cxr-densenet121", version: "0.1", deviceUid: "2.25.9", training: { summary: "untrained — random weights" } });
  });

  it("unknown API routes are 404 JSON", async () => {
    const r = await get("/api/nothing");
    expect(r.status).toBe(404);
    expect((await r.json()).error).toBe("no API route GET /api/nothing");
  });

  it("serves the worklist page with a token and its assets without one", async () => {
    expect((await get("/", {})).status).toBe(401);
    const page = await get("/");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("/assets/worklist.js");
    const js = await get("/assets/worklist.js", {});
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
  });

  it("serves the viewer at /viewer/ with a bearer token (the viewer contract; ?token= is exchanged for a session, see web-security.test.ts)", async () => {
    expect((await get("/viewer/?studyInstanceUid=1.2", {})).status).toBe(401);
    const r = await get("/viewer/?studyInstanceUid=1.2");
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("<title>viewer</title>");
    expect((await get("/viewer/assets/viewer.js", {})).status).toBe(200);
  });

  it("proxies the viewer's DICOMweb requests to the PACS, with a token only", async () => {
    expect((await get("/viewer/dicom-web/studies/1.2/series", {})).status).toBe(401);
    const r = await get("/viewer/dicom-web/studies/1.2/series");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual([{ path: "/dicom-web/studies/1.2/series" }]);
  });

  function openWs(url: string, headers?: Record<string, string>): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once("open", () => resolve(ws));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }

  it("the WebSocket refuses missing and wrong tokens with 401", async () => {
    const wsBase = base.replace("http", "ws");
    await expect(openWs(`${wsBase}/ws`)).rejects.toThrow("HTTP 401");
    await expect(openWs(`${wsBase}/ws?token=nope`)).rejects.toThrow("HTTP 401");
    await expect(openWs(`${wsBase}/elsewhere?token=${TOKEN}`)).rejects.toThrow("HTTP 404");
  });

  it.each([
    ["query parameter", (b: string) => [`${b}/ws?token=${TOKEN}`, undefined] as const],
    ["Authorization header", (b: string) => [`${b}/ws`, auth] as const],
  ])("the WebSocket (token as %s) pushes every new or changed study", async (_name, target) => {
    const [url, headers] = target(base.replace("http", "ws"));
    const ws = await openWs(url, headers);
    const messages: unknown[] = [];
    const two = new Promise<void>((resolve) =>
      ws.on("message", (data) => {
        messages.push(JSON.parse(String(data)));
        if (messages.length === 2) resolve();
      }),
    );
    store.put(study("2.1", { state: "received" }));
    store.put(study("2.1", { state: "done", probs: { Effusion: 0.75 } }));
    await two;
    ws.close();
    expect(messages).toMatchObject([
      { type: "study", study: { studyInstanceUid: "2.1", state: "received", priority: "routine", reason: "pending: received — not triaged yet" } },
      { type: "study", study: { studyInstanceUid: "2.1", state: "done", priority: "urgent", score: 1.5, reason: "Effusion 0.75 ≥ 0.50" } },
    ]);
  });

  it("close() unsubscribes from the store", async () => {
    const extra = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
    });
    const before = store.listenerCount;
    await extra.listen(0, "127.0.0.1");
    await extra.close();
    expect(store.listenerCount).toBe(before - 1);
  });

  it("GET /api/drift: the drift monitor's status behind the token, 404 with the reason without a reference", async () => {
    expect((await get("/api/drift")).status).toBe(404);
    expect(((await (await get("/api/drift")).json()) as { error: string }).error).toMatch(/drift monitoring is off/);
    const status = { reference: "ref", window: 60, observed: 1, threshold: 0.25, ksAlpha: 0.001, minSamples: 30, gateFailureRate: 0, gateFailures: {}, quantities: {}, notInReference: {}, days: [{ day: "2026-12-03", observed: 1, gateFailureRate: 0, gateFailures: {}, quantities: {} }], alerts: [] };
    const withDrift = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
      drift: () => status,
    });
    const { url } = await withDrift.listen(0, "127.0.0.1");
    try {
      expect((await fetch(`${url}/api/drift`)).status).toBe(401);
      expect(await (await fetch(`${url}/api/drift`, { headers: auth })).json()).toEqual(status);
      // The page: same token rule as the worklist page, 404 with the reason when drift monitoring is off.
      expect((await fetch(`${url}/drift`)).status).toBe(401);
      const page = await fetch(`${url}/drift`, { headers: auth });
      expect(page.status).toBe(200);
      expect(page.headers.get("cache-control")).toBe("no-store");
      expect(await page.text()).toMatch(/1 of the 30 studies needed/);
      const off = await get("/drift");
      expect(off.status).toBe(404);
      expect(await off.text()).toMatch(/Drift monitoring is off/);
    } finally {
      await withDrift.close();
    }
  });
});
