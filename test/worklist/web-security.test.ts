import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import WebSocket from "ws";
import { apiConfigSchema, priorityConfigSchema, type ApiConfig } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer, type ApiStudy } from "../../src/worklist/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { MemoryStudyStore, study } from "./memory-store.ts";

const TOKEN = "web-token-0123456789abcdef";
const JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう";

// Real HTTP and WebSocket requests against the worklist server: headers, the token-for-cookie
// exchange, session expiry, the WebSocket's Origin check, and names with all their component groups.
describe("worklist web security", () => {
  const tmp = tempDir("cxr-web-");
  const store = new MemoryStudyStore();
  const servers: ApiServer[] = [];
  let base: string;
  const viewerDir = join(tmp.dir, "viewer");
  const heatmap = join(tmp.dir, "h.png");

  async function start(api: Partial<ApiConfig> = {}): Promise<string> {
    const server = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN], ...api }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
      viewerDir,
    });
    servers.push(server);
    return (await server.listen(0, "127.0.0.1")).url;
  }

  beforeAll(async () => {
    mkdirSync(join(viewerDir, "assets"), { recursive: true });
    writeFileSync(join(viewerDir, "index.html"), "<!doctype html><title>viewer</title>");
    writeFileSync(join(viewerDir, "assets", "viewer.js"), "console.log(1)");
    writeFileSync(heatmap, "png stand-in");
    store.put(study("1.2", { patientName: JAPANESE, heatmaps: [{ label: "Effusion", path: heatmap }], probs: { Effusion: 0.8 } }));
    base = await start();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    tmp.cleanup();
  });

  const bearer = { Authorization: `Bearer ${TOKEN}` };
  const get = (path: string, headers: Record<string, string> = {}, root = base) => fetch(`${root}${path}`, { headers, redirect: "manual" });

  /** Opens the page with the token as a browser would and returns the session cookie it got. */
  async function login(root = base): Promise<string> {
    const r = await get(`/?token=${TOKEN}`, {}, root);
    expect(r.status).toBe(303);
    return r.headers.get("set-cookie")!.split(";")[0]!;
  }

  it.each(["/", "/api/studies", "/api/studies/1.2", "/api/studies/1.2/heatmaps/Effusion.png", "/viewer/?studyInstanceUid=1.2", "/assets/worklist.js", "/healthz", "/metrics", "/nothing"])(
    "%s carries the security headers",
    async (path) => {
      const r = await get(path, bearer);
      expect(r.headers.get("x-content-type-options")).toBe("nosniff");
      expect(r.headers.get("x-frame-options")).toBe("DENY");
      expect(r.headers.get("referrer-policy")).toBe("no-referrer");
      const csp = r.headers.get("content-security-policy")!;
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    },
  );

  it("patient data and the pages that show it are never cached; static assets may be", async () => {
    for (const path of ["/", "/api/studies", "/api/studies/1.2", "/api/studies/1.2/heatmaps/Effusion.png", "/api/config", "/viewer/?studyInstanceUid=1.2"]) {
      const r = await get(path, bearer);
      expect([path, r.status]).toEqual([path, 200]);
      expect([path, r.headers.get("cache-control")]).toEqual([path, "no-store"]);
    }
    for (const path of ["/assets/worklist.js", "/viewer/assets/viewer.js"]) expect((await get(path)).headers.get("cache-control")).not.toBe("no-store");
  });

  it("a page address with the token gets an HttpOnly SameSite=Strict session cookie and a redirect without the token", async () => {
    const r = await get(`/?token=${TOKEN}`);
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toBe("/");
    const cookie = r.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^cxr_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(TOKEN);
    const viewer = await get(`/viewer/?studyInstanceUid=1.2&token=${TOKEN}&render=cpu`);
    expect(viewer.status).toBe(303);
    expect(viewer.headers.get("location")).toBe("/viewer/?studyInstanceUid=1.2&render=cpu");
    const session = cookie.split(";")[0]!;
    for (const path of ["/", "/api/studies", "/viewer/?studyInstanceUid=1.2", "/api/session"]) expect([path, (await get(path, { Cookie: session })).status]).toEqual([path, 200]);
  });

  it("a wrong token gets no cookie; a forged cookie is refused", async () => {
    const r = await get("/?token=wrong-token-0123456789");
    expect(r.status).toBe(401);
    expect(r.headers.get("set-cookie")).toBeNull();
    const forged = await get("/api/studies", { Cookie: "cxr_session=forged" });
    expect(forged.status).toBe(401);
    expect((await forged.json()).error).toMatch(/session has expired/);
  });

  it("API clients keep using the Authorization header", async () => {
    expect((await get("/api/studies", bearer)).status).toBe(200);
    expect((await get("/api/studies", { Authorization: "Bearer wrong-token-0123456789" })).status).toBe(401);
  });

  function openWs(url: string, headers: Record<string, string>): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once("open", () => resolve(ws));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }

  it("the WebSocket refuses other origins, also another port of the same host, and accepts its own page's", async () => {
    const session = await login();
    const wsUrl = `${base.replace("http", "ws")}/ws`;
    const otherPort = base.replace(/:(\d+)$/, (_m, p: string) => `:${Number(p) + 1}`);
    for (const origin of ["http://evil.example", otherPort, "null"]) {
      await expect(openWs(wsUrl, { Cookie: session, Origin: origin })).rejects.toThrow("HTTP 403");
    }
    const own = await openWs(wsUrl, { Cookie: session, Origin: base });
    own.close();
    // No Origin: not a browser; it needs a token like any API client.
    (await openWs(wsUrl, bearer)).close();
    await expect(openWs(wsUrl, {})).rejects.toThrow("HTTP 401");
  });

  it("api.allowedOrigins lets a named other origin open the WebSocket", async () => {
    const root = await start({ allowedOrigins: ["https://ohif.example:3000/"] });
    const wsUrl = `${root.replace("http", "ws")}/ws`;
    (await openWs(wsUrl, { ...bearer, Origin: "https://ohif.example:3000" })).close();
    await expect(openWs(wsUrl, { ...bearer, Origin: "https://ohif.example:3001" })).rejects.toThrow("HTTP 403");
  });

  it("a session ends after api.sessionMinutes without use, but not while its WebSocket is open", async () => {
    const root = await start({ sessionMinutes: 0.005 }); // 300 ms
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const idle = await login(root);
    expect((await get("/api/studies", { Cookie: idle }, root)).status).toBe(200);
    await wait(450);
    expect((await get("/api/studies", { Cookie: idle }, root)).status).toBe(401);

    const live = await login(root);
    const ws = await openWs(`${root.replace("http", "ws")}/ws`, { Cookie: live, Origin: root });
    await wait(450);
    expect((await get("/api/studies", { Cookie: live }, root)).status).toBe(200);
    ws.close();
    await new Promise((r) => ws.once("close", r));
    await wait(450);
    expect((await get("/api/session", { Cookie: live }, root)).status).toBe(401);
  });

  it("the API gives a name with all its component groups (alphabetic, ideographic, phonetic)", async () => {
    const list = (await (await get("/api/studies", bearer)).json()) as ApiStudy[];
    expect(list.find((s) => s.studyInstanceUid === "1.2")?.patientName).toBe(JAPANESE);
  });
});
