import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import type { Browser, Page } from "playwright-core";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer } from "../../src/worklist/server.ts";
import { artifactPath, launchChromium } from "./browser.ts";
import { MemoryStudyStore, study } from "./memory-store.ts";

const TOKEN = "page-token-0123456789abcdef";

// The page against the API server and an in-memory store: order, colours, live updates, viewer links.
// (worklist-e2e.test.ts shows the same against a real service fed by storescu.)
describe("worklist page", () => {
  const store = new MemoryStudyStore();
  let api: ApiServer;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    const now = Date.now();
    store.put(study("1.2.3.1", { receivedAt: new Date(now - 30 * 60_000).toISOString(), probs: { Cardiomegaly: 0.2 }, patientName: "Routine^Case" }));
    store.put(study("1.2.3.2", { receivedAt: new Date(now - 5 * 60_000).toISOString(), state: "rejected", reason: "Body Part Examined RIBCAGE is not CHEST" }));
    api = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
      model: { name: "cxr-triage DenseNet121-14", version: "0.1.0", deviceUid: "2.25.1", training: { summary: "untrained — random weights (seed 1)" } },
    });
    base = (await api.listen(0, "127.0.0.1")).url;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  it("lists studies in priority order and adds a new one live, without reload", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 480 } });
    await page.goto(`${base}/?token=${TOKEN}`);
    await page.waitForSelector("#live.on");
    await page.waitForSelector('tr[data-uid="1.2.3.2"]');
    expect(await page.locator("#model").textContent()).toBe("⚠ NOT FOR CLINICAL USE — Model cxr-triage DenseNet121-14 0.1.0 — untrained — random weights (seed 1) — metrics: none reported");
    expect(await page.locator("tbody tr").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.priority))).toEqual(["review", "routine"]);

    // A navigation would reset this marker: it survives only if the page updates in place.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    store.put(study("1.2.3.3", { state: "exported", probs: { Pneumothorax: 0.91 }, thresholds: { Pneumothorax: 0.42 } }));
    const row = page.locator('tr[data-uid="1.2.3.3"]');
    await row.waitFor();
    expect(await row.getAttribute("data-priority")).toBe("urgent");
    expect(await row.locator(".reason").textContent()).toBe("Pneumothorax 0.91 ≥ 0.42");
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(await page.locator("tbody tr").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.uid))).toEqual(["1.2.3.3", "1.2.3.2", "1.2.3.1"]);
    // Colour-coded: urgent rows carry the red badge.
    expect(await row.locator(".badge").evaluate((el) => getComputedStyle(el).backgroundColor)).toBe("rgb(198, 40, 40)");
    expect(await page.locator('tr[data-uid="1.2.3.1"] .since').textContent()).toBe("30 min");
    expect((await row.locator(".state").getAttribute("title"))?.split("\n").map((l) => l.split(" ")[0])).toEqual(["received", "exported"]);
    expect(await row.locator("a").getAttribute("href")).toBe("/viewer/?studyInstanceUid=1.2.3.3");
    expect(await page.locator("#counts").textContent()).toBe("3 studies: 1 urgent, 1 review, 1 routine");
    await page.screenshot({ path: artifactPath("worklist-page.png"), fullPage: true });
    await page.close();
  });

  it("shows a trained model's data and headline metrics", async () => {
    const trained = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
      model: {
        name: "cxr-triage DenseNet121-14",
        version: "5d5d4f412ea0",
        deviceUid: "2.25.2",
        training: {
          summary: "transfer learning: classifier head trained on frozen trunk features",
          data: "NIH ChestX-ray14 (520 images): train 352, valid 79, test 89",
          metrics: { inputSize: 224, valid: { mean_auroc: 0.5854, labels: {} }, test: { mean_auroc: 0.63994 }, history: [{ epoch: 1 }] },
        },
      },
    });
    const { url } = await trained.listen(0, "127.0.0.1");
    const page = await browser.newPage();
    await page.goto(`${url}/?token=${TOKEN}`);
    const model = page.locator("#model.trained");
    await model.waitFor();
    expect(await model.textContent()).toBe(
      "Model cxr-triage DenseNet121-14 5d5d4f412ea0 — trained on: NIH ChestX-ray14 (520 images): train 352, valid 79, test 89 — metrics: valid mean AUROC 0.585 · test mean AUROC 0.640",
    );
    await page.close();
    await trained.close();
  });

  /** Errors the page logs, among them every Content-Security-Policy violation. */
  function consoleErrors(page: Page): string[] {
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    return errors;
  }

  it("trades the token in the address for an HttpOnly session cookie, works under its CSP, shows all of a name's component groups and replaced results", async () => {
    store.put(study("1.2.3.4", { patientName: "Yamada^Tarou=山田^太郎=やまだ^たろう", patientId: "JP-1", probs: { Nodule: 0.1 }, outputs: { sr: "2.25.2", sc: [], supersedes: "2.25.1" } }));
    const page = await browser.newPage();
    const errors = consoleErrors(page);
    const response = await page.goto(`${base}/?token=${TOKEN}`);
    expect(page.url()).toBe(`${base}/`);
    expect(response?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
    await page.waitForSelector("#live.on");
    const row = page.locator('tr[data-uid="1.2.3.4"]');
    await row.waitFor();
    expect(await row.locator("td").nth(5).textContent()).toBe("Yamada, Tarou = 山田 太郎 = やまだ たろう · JP-1");
    // Processed again (an image re-sent with new pixels): the row says its results replaced earlier ones.
    expect(await row.locator(".replaced").textContent()).toBe("results replaced");
    expect(await row.locator(".replaced").getAttribute("title")).toContain("SR 2.25.1");
    expect(await page.evaluate(() => document.cookie)).toBe("");
    const cookies = await page.context().cookies();
    expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([["cxr_session", true, "Strict"]]);
    // The viewer link opens without a token: the cookie authenticates it.
    const viewer = await page.request.get(`${base}${await row.locator("a").getAttribute("href")}`, { maxRedirects: 0 });
    expect(viewer.status()).not.toBe(401);
    expect(errors).toEqual([]);
    // The drift page is linked and opens with the same cookie (this server has no drift reference: it says so).
    await page.click("#drift-link");
    expect(page.url()).toBe(`${base}/drift`);
    expect(await page.locator("#off").textContent()).toMatch(/^Drift monitoring is off: no reference sample/);
    await page.close();
  });

  describe("against a page of another origin (another port of this host: the same site for cookies)", () => {
    let evil: Server;
    let evilUrl: string;
    beforeAll(async () => {
      evil = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><iframe id="f" src="${base}/"></iframe>`));
      await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
      evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    });
    afterAll(() => void evil?.close());

    it("the worklist cannot be framed, and its WebSocket refuses that page although the browser sends the cookie", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${base}/?token=${TOKEN}`); // the session cookie is in this browser now
      await page.goto(evilUrl);
      await page.waitForLoadState("load");
      const frame = page.frames().find((f) => f !== page.mainFrame())!;
      // Blocked by frame-ancestors: the frame holds the browser's error page, not the worklist.
      expect(await frame.locator("#worklist").count()).toBe(0);
      const outcome = await page.evaluate(
        (ws) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(ws);
            socket.onopen = () => resolve("open");
            socket.onclose = (e) => resolve(`closed ${e.code}`);
          }),
        `${base.replace("http", "ws")}/ws`,
      );
      expect(outcome).toBe("closed 1006");
      await context.close();
    });
  });

  it("says so when the address has no token", async () => {
    const page = await browser.newPage();
    const response = await page.goto(`${base}/`);
    expect(response?.status()).toBe(401);
    await page.close();
  });
});
