import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import express, { type NextFunction, type Request, type Response } from "express";
import type { Logger } from "pino";
import { WebSocketServer, WebSocket } from "ws";
import { z } from "zod";
import { redact, withoutCredentials } from "../config/secrets.ts";
import type { ApiConfig, PriorityConfig } from "../config/worklist.ts";
import { NIH_LABELS } from "../model/labels.ts";
import { createDicomwebProxy, VIEWER_DIST_DIR } from "../viewer-extension/index.ts";
import { noStore, originAllowed, securityHeaders, SessionStore, sessionCookie, sessionId } from "./http-security.ts";
import type { DriftStatus } from "../drift/monitor.ts";
import { renderDriftPage } from "./drift-page.ts";
import type { ServiceMetrics } from "./metrics.ts";
import { compareWorklist, judgeFindings, prioritize, PRIORITY_ORDER, type Priority } from "./priority.ts";
import { STUDY_STATES, type ModelInfo, type StudyRecord, type StudyState, type WorklistReader } from "./study.ts";

/** One element of GET /api/studies (the API contract of issue #6; other tools rely on it). */
export interface ApiStudy {
  studyInstanceUid: string;
  state: StudyState;
  priority: Priority;
  score: number;
  reason: string;
  receivedAt: string;
  updatedAt: string;
  history: { state: StudyState; at: string; node?: string }[];
  /** The node that processed it (several nodes may share one store). */
  processedBy?: string;
  /** Judged with the configured operating points (`threshold` is the one in force). */
  findings: { label: string; probability: number; threshold: number; positive: boolean }[];
  patientName?: string;
  patientId?: string;
  accessionNumber?: string;
  studyDescription?: string;
  model?: StudyRecord["model"];
  /**
   * The SR (SOP Instance UID) the current results replaced: the study was processed again (e.g. an
   * image re-sent with new pixels), and the new SR names this one as its predecessor.
   */
  supersedes?: string;
  /** Notifications of the results (RIS, FHIR, webhooks): pending and failing ones with their last error. */
  notifications?: { destination: string; state: string; required: boolean; attempts: number; lastError?: string; ack?: string; deliveredAt?: string }[];
  /** The viewer page of this study (a browser with the session cookie opens it as it is; else append `&token=...`). */
  viewerUrl: string;
}

/** GET /api/studies/<uid>: the list element plus heatmap images and the results' places in the PACS. */
export interface ApiStudyDetail extends ApiStudy {
  heatmaps: { label: string; url: string }[];
  outputs: { sr?: string; sc: string[]; pm: string[]; supersedes?: string };
  /** QIDO-RS searches in the PACS for the SR, each SC and each Parametric Map (absent without `api.pacsDicomWebUrl`). */
  pacs?: { sr?: string; sc: string[]; pm: string[] };
}

export interface ApiServerOptions {
  store: WorklistReader;
  /** The effective configuration: `api` and `priority` are read; the whole object is shown (secrets hidden) at GET /api/config. */
  config: { api: ApiConfig; priority: PriorityConfig } & Record<string, unknown>;
  metrics: ServiceMetrics;
  logger: Logger;
  /** The loaded model's card (or its summary), shown on the worklist page; else the newest study's model is shown. */
  model?: ModelInfo | (() => ModelInfo | undefined);
  /** Drift monitoring's current status, served at GET /api/drift and as the /drift page (404 when the service has no reference). */
  drift?: () => DriftStatus;
  /** Folder of the built viewer page (issue #7), served at /viewer/; default its build folder (VIEWER_DIST_DIR). */
  viewerDir?: string;
}

export interface ApiServer {
  readonly app: express.Express;
  readonly server: Server;
  listen(port?: number, host?: string): Promise<{ port: number; host: string; url: string }>;
  close(): Promise<void>;
}

const PAGE_DIR = fileURLToPath(new URL("./page/", import.meta.url));

/** A random bearer token (for `cxr demo` and first starts without configured tokens). */
export function generateApiToken(): string {
  return randomBytes(24).toString("base64url");
}

export function toApiStudy(rec: StudyRecord, priorityConfig: PriorityConfig): ApiStudy {
  const p = prioritize(rec, priorityConfig);
  return {
    studyInstanceUid: rec.studyInstanceUid,
    state: rec.state,
    priority: p.priority,
    score: p.score,
    reason: p.reason,
    receivedAt: rec.receivedAt,
    updatedAt: rec.updatedAt,
    history: rec.history,
    findings: judgeFindings(rec, priorityConfig).map(({ label, probability, threshold, positive }) => ({ label, probability, threshold, positive })),
    ...(rec.patientName !== undefined && { patientName: rec.patientName }),
    ...(rec.patientId !== undefined && { patientId: rec.patientId }),
    ...(rec.accessionNumber !== undefined && { accessionNumber: rec.accessionNumber }),
    ...(rec.studyDescription !== undefined && { studyDescription: rec.studyDescription }),
    ...(rec.model !== undefined && { model: rec.model }),
    ...(rec.processedBy !== undefined && { processedBy: rec.processedBy }),
    ...(rec.outputs?.supersedes !== undefined && { supersedes: rec.outputs.supersedes }),
    ...(rec.notifications !== undefined && {
      notifications: rec.notifications.map(({ destination, state, required, attempts, lastError, ack, deliveredAt }) => ({ destination, state, required, attempts, lastError, ack, deliveredAt })),
    }),
    viewerUrl: `/viewer/?studyInstanceUid=${encodeURIComponent(rec.studyInstanceUid)}`,
  };
}

/** Log fields of a study: identifiers of the patient only when `logPhi` allows it. */
export function studyLogFields(rec: StudyRecord, logPhi: boolean): Record<string, unknown> {
  const fields: Record<string, unknown> = { studyInstanceUid: rec.studyInstanceUid, state: rec.state };
  if (logPhi) Object.assign(fields, { patientName: rec.patientName, patientId: rec.patientId, accessionNumber: rec.accessionNumber });
  return fields;
}

// ---- query validation -------------------------------------------------------------------------

/** `a,b` or repeated `?x=a&x=b`, each value one of `values`. */
function listOf<T extends string>(name: string, values: readonly [T, ...T[]]) {
  return z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.enum(values, { error: (iss) => `${name} '${String(iss.input)}' is not one of ${values.join(", ")}` })));
}

const DAY_MS = 86_400_000;
function instant(name: string, endOfDay: boolean) {
  return z.string().transform((s, ctx) => {
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
      const t = Date.parse(`${s}T00:00:00Z`);
      if (!Number.isNaN(t)) return endOfDay ? t + DAY_MS : t;
    } else if (z.iso.datetime({ offset: true }).safeParse(s).success) {
      return Date.parse(s);
    }
    ctx.addIssue({ code: "custom", message: `${name} '${s}' is not a date (YYYY-MM-DD) or ISO 8601 date-time with zone` });
    return z.NEVER;
  });
}

const SORT_KEYS = ["priority", "score", "receivedAt", "updatedAt"] as const;
const listQuerySchema = z
  .object({
    state: listOf("state", STUDY_STATES as [StudyState, ...StudyState[]]).optional(),
    priority: listOf("priority", PRIORITY_ORDER as [Priority, ...Priority[]]).optional(),
    /** Studies received at or after this instant (a date means its midnight UTC). */
    from: instant("from", false).optional(),
    /** Studies received before this instant (a date includes that whole day, UTC). */
    to: instant("to", true).optional(),
    /** Only studies where this finding is positive at its operating point. */
    finding: listOf("finding", NIH_LABELS as unknown as [string, ...string[]]).optional(),
    sort: z.enum(SORT_KEYS, { error: (iss) => `sort '${String(iss.input)}' is not one of ${SORT_KEYS.join(", ")}` }).default("priority"),
    order: z.enum(["asc", "desc"], { error: (iss) => `order '${String(iss.input)}' is not asc or desc` }).optional(),
    token: z.string().optional(),
  })
  .strict();

function queryError(err: z.ZodError): string {
  return err.issues
    .map((i) => (i.code === "unrecognized_keys" ? `unknown query parameter(s) ${i.keys.join(", ")}` : i.message))
    .join("; ");
}

// ---- server -----------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const { store, metrics, logger } = opts;
  const api = opts.config.api;
  const priorityConfig = opts.config.priority;
  if (api.tokens.length === 0) throw new Error("api.tokens is empty: configure at least one bearer token for the worklist API");
  const tokenDigests = api.tokens.map(digest);

  /** Constant-time comparison against every configured token. */
  function tokenValid(token: string): boolean {
    const d = digest(token);
    let ok = false;
    for (const t of tokenDigests) ok = timingSafeEqual(d, t) || ok;
    return ok;
  }

  const sessions = new SessionStore(api.sessionMinutes * 60_000);

  /**
   * Who a request is: a bearer token (Authorization header, else the `token` query parameter, which
   * scripts and the viewer library still use) or the browser session cookie the page and viewer got.
   */
  function authenticate(headers: IncomingMessage["headers"], rawUrl: string): { error?: string; session?: string } {
    const auth = headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return m && tokenValid(m[1]!) ? {} : { error: "invalid bearer token" };
    }
    const token = new URL(rawUrl, "http://localhost").searchParams.get("token");
    if (token !== null) return tokenValid(token) ? {} : { error: "invalid bearer token" };
    const session = sessionId(headers);
    if (session !== undefined) return sessions.use(session) ? { session } : { error: "the session has expired: open the address with ?token=<token> again" };
    return { error: "missing bearer token (Authorization: Bearer <token>, or open the page with ?token=<token>)" };
  }

  function requireToken(req: Request, res: Response, next: NextFunction): void {
    const { error } = authenticate(req.headers, req.originalUrl);
    if (error) {
      res.status(401).set("WWW-Authenticate", 'Bearer realm="cxr-triage"').json({ error });
      return;
    }
    next();
  }

  /**
   * The worklist page and the viewer: a valid `token` in the address is exchanged for a session
   * cookie and the browser is sent to the same address without it, so the token stays out of
   * history, bookmarks and screenshots. Without one, the cookie or a bearer header is required.
   */
  function pageAuth(req: Request, res: Response, next: NextFunction): void {
    const url = new URL(req.originalUrl, "http://localhost");
    const token = url.searchParams.get("token");
    if (token === null || !tokenValid(token)) return requireToken(req, res, next);
    url.searchParams.delete("token");
    res.set("Set-Cookie", sessionCookie(sessions.create(), req.secure)).redirect(303, `${url.pathname}${url.search}`);
  }

  async function currentModel(): Promise<ModelInfo | undefined> {
    const m = typeof opts.model === "function" ? opts.model() : opts.model;
    if (m) return m;
    const newest = (await store.list())
      .filter((r) => r.model)
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))[0]?.model;
    return newest && { name: newest.name, version: newest.version, deviceUid: newest.deviceUid, training: { summary: newest.training } };
  }

  function detail(rec: StudyRecord): ApiStudyDetail {
    const base = toApiStudy(rec, priorityConfig);
    const uid = encodeURIComponent(rec.studyInstanceUid);
    const outputs = { ...(rec.outputs?.sr !== undefined && { sr: rec.outputs.sr }), sc: rec.outputs?.sc ?? [], pm: rec.outputs?.pm ?? [], ...(rec.outputs?.supersedes !== undefined && { supersedes: rec.outputs.supersedes }) };
    const pacsBase = api.pacsDicomWebUrl && String(redact(api.pacsDicomWebUrl)).replace(/\/+$/, "");
    const qido = (sop: string) => `${pacsBase}/studies/${uid}/instances?SOPInstanceUID=${encodeURIComponent(sop)}`;
    return {
      ...base,
      heatmaps: (rec.heatmaps ?? []).map((h) => ({ label: h.label, url: `/api/studies/${uid}/heatmaps/${encodeURIComponent(h.label)}.png` })),
      outputs,
      ...(pacsBase && { pacs: { ...(outputs.sr !== undefined && { sr: qido(outputs.sr) }), sc: outputs.sc.map(qido), pm: outputs.pm.map(qido) } }),
    };
  }

  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  app.use(securityHeaders);

  // Request log and latency metric; the path only (the query may carry the token).
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // Route patterns (not paths) as labels keep the metric's cardinality bounded.
      const path = req.originalUrl.split("?")[0]!;
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : res.statusCode === 404 ? "unmatched" : path.split("/").slice(0, 2).join("/") || "/";
      metrics.httpRequestDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      logger.debug({ method: req.method, path, status: res.statusCode, ms: Math.round(seconds * 1000) }, "http request");
    });
    next();
  });

  app.get("/healthz", async (_req, res) => {
    let counts;
    try {
      counts = await store.countsByState();
    } catch (err) {
      // The store is unreachable (e.g. PostgreSQL down): this node answers C-STORE with failures meanwhile.
      res.status(503).json({ status: "store unavailable", reason: (err as Error).message, websocketClients: wss.clients.size });
      return;
    }
    res.json({ status: "ok", studies: Object.values(counts).reduce((n, c) => n + c, 0), websocketClients: wss.clients.size });
  });

  app.get("/metrics", async (_req, res) => {
    metrics.studiesByState.reset();
    for (const [state, n] of Object.entries(await store.countsByState())) metrics.studiesByState.set({ state }, n);
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // The page's script and style carry no data and load without a token; the page itself needs one.
  app.use("/assets", express.static(PAGE_DIR, { index: false, fallthrough: false }));
  app.get("/", noStore, pageAuth, (_req, res) => {
    res.sendFile("index.html", { root: PAGE_DIR });
  });
  // Drift monitoring's plots: rendered here, so the page needs no script.
  app.get("/drift", noStore, pageAuth, (_req, res) => {
    res.status(opts.drift ? 200 : 404).type("html").send(renderDriftPage(opts.drift?.()));
  });

  // The viewer (issue #7): its page needs the token like the worklist; its bundle does not. It reads
  // images through a same-origin DICOMweb proxy to the PACS (browsers may not call the PACS directly).
  const viewerDir = opts.viewerDir ?? VIEWER_DIST_DIR;
  if (api.pacsDicomWebUrl) {
    const pacs = withoutCredentials(api.pacsDicomWebUrl);
    app.use("/viewer/dicom-web", noStore, requireToken, createDicomwebProxy(pacs.url, { headers: pacs.headers, onError: (message) => logger.warn(message) }));
  }
  app.get(["/viewer", "/viewer/", "/viewer/index.html"], noStore, pageAuth, (req, res) => {
    if (req.path === "/viewer") return res.redirect(301, `/viewer/${req.originalUrl.slice("/viewer".length)}`);
    if (!existsSync(`${viewerDir}/index.html`)) throw new HttpError(503, `the viewer page is not built (${viewerDir}/index.html missing): build it with npx tsx src/viewer-extension/build.ts`);
    res.sendFile("index.html", { root: viewerDir });
  });
  app.use("/viewer", express.static(viewerDir, { index: false }));

  const apiRouter = express.Router();
  apiRouter.use(noStore, requireToken);

  apiRouter.get("/studies", async (req, res) => {
    const parsed = listQuerySchema.safeParse(req.query);
    if (!parsed.success) throw new HttpError(400, `invalid query: ${queryError(parsed.error)}`);
    const q = parsed.data;
    let studies = (await store.list()).map((r) => toApiStudy(r, priorityConfig));
    if (q.state) studies = studies.filter((s) => q.state!.includes(s.state));
    if (q.priority) studies = studies.filter((s) => q.priority!.includes(s.priority));
    if (q.from !== undefined) studies = studies.filter((s) => Date.parse(s.receivedAt) >= q.from!);
    if (q.to !== undefined) studies = studies.filter((s) => Date.parse(s.receivedAt) < q.to!);
    if (q.finding) studies = studies.filter((s) => q.finding!.every((label) => s.findings.some((f) => f.label === label && f.positive)));
    const order = q.order ?? (q.sort === "priority" ? "asc" : "desc");
    // The sort key goes by `order`; ties always fall back to the worklist order.
    const key: Record<(typeof SORT_KEYS)[number], (a: ApiStudy, b: ApiStudy) => number> = {
      priority: (a, b) => compareWorklist(a, b),
      score: (a, b) => a.score - b.score,
      receivedAt: (a, b) => a.receivedAt.localeCompare(b.receivedAt),
      updatedAt: (a, b) => a.updatedAt.localeCompare(b.updatedAt),
    };
    studies.sort((a, b) => (order === "asc" ? 1 : -1) * key[q.sort](a, b) || compareWorklist(a, b));
    res.json(studies);
  });

  async function findStudy(uid: string): Promise<StudyRecord> {
    const rec = await store.get(uid);
    if (!rec) throw new HttpError(404, `study ${uid} is not on the worklist`);
    return rec;
  }

  apiRouter.get("/drift", (_req, res) => {
    if (!opts.drift) throw new HttpError(404, "drift monitoring is off: no reference sample (cxr drift-reference, config drift.reference)");
    res.json(opts.drift());
  });

  apiRouter.get("/studies/:uid", async (req, res) => {
    res.json(detail(await findStudy(String(req.params.uid))));
  });

  apiRouter.get("/studies/:uid/heatmaps/:file", async (req, res) => {
    const rec = await findStudy(String(req.params.uid));
    const file = String(req.params.file);
    if (!file.endsWith(".png")) throw new HttpError(404, `heatmaps are served as <label>.png, not '${file}'`);
    const label = file.slice(0, -4);
    const heatmap = rec.heatmaps?.find((h) => h.label === label);
    if (!heatmap) throw new HttpError(404, `study ${rec.studyInstanceUid} has no heatmap for '${label}'`);
    if (!existsSync(heatmap.path)) throw new HttpError(410, `heatmap '${label}' of study ${rec.studyInstanceUid} is recorded but its file is gone`);
    res.type("png").sendFile(heatmap.path);
  });

  apiRouter.get("/config", (_req, res) => {
    res.json(redact(opts.config));
  });

  /** The page asks when its WebSocket drops: 401 says the session is gone (and why), not the network. */
  apiRouter.get("/session", (_req, res) => {
    res.json({ idleMinutes: api.sessionMinutes });
  });

  apiRouter.get("/model", async (_req, res) => {
    const model = await currentModel();
    if (!model) throw new HttpError(404, "no model is loaded and no study carries model information yet");
    res.json(model);
  });

  apiRouter.use((req) => {
    throw new HttpError(404, `no API route ${req.method} /api${req.path}`);
  });
  app.use("/api", apiRouter);

  app.use((req) => {
    throw new HttpError(404, `no route ${req.method} ${req.path}`);
  });

  // Every error leaves as JSON with a message that says what was wrong.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : typeof (err as { status?: unknown }).status === "number" ? (err as { status: number }).status : 500;
    const message = err instanceof Error ? err.message : String(err);
    if (status >= 500) logger.error({ err, path: req.path }, "API request failed");
    if (res.headersSent) return;
    res.status(status).json({ error: status === 404 && !(err instanceof HttpError) ? `not found: ${req.path}` : message });
  });

  const server = createServer(app);

  // WebSocket: every new or changed study is pushed to every subscriber.
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const reject = (status: number, text: string, error: string) => {
      const body = JSON.stringify({ error });
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    if (url.pathname !== "/ws") return reject(404, "Not Found", `no WebSocket at ${url.pathname}; use /ws`);
    // Cross-site WebSocket hijacking: a page of another origin (even another port of this host, which
    // counts as the same site for SameSite cookies) must not subscribe with the user's session.
    if (!originAllowed(req.headers, "encrypted" in socket && !!socket.encrypted, api.allowedOrigins)) {
      logger.warn({ origin: req.headers.origin }, "websocket upgrade from another origin refused");
      return reject(403, "Forbidden", `origin ${req.headers.origin} may not open the WebSocket (allowed: this server${api.allowedOrigins.length ? `, ${api.allowedOrigins.join(", ")}` : ""}; see api.allowedOrigins)`);
    }
    const { error, session } = authenticate(req.headers, req.url ?? "/");
    if (error) return reject(401, "Unauthorized", error);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (session !== undefined) {
        sessions.socketOpened(session);
        ws.once("close", () => sessions.socketClosed(session));
      }
      wss.emit("connection", ws, req);
    });
  });
  wss.on("connection", (ws) => {
    logger.debug({ clients: wss.clients.size }, "websocket subscriber connected");
    ws.on("error", (err) => logger.warn({ err: err.message }, "websocket subscriber error"));
  });
  const unsubscribe = store.onChange((rec) => {
    const message = JSON.stringify({ type: "study", study: toApiStudy(rec, priorityConfig) });
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(message);
    logger.debug({ ...studyLogFields(rec, api.logPhi), subscribers: wss.clients.size }, "study pushed to websocket subscribers");
  });

  return {
    app,
    server,
    listen(port = api.httpPort, host = api.bindAddress) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const addr = server.address() as AddressInfo;
          const urlHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
          logger.info({ host: addr.address, port: addr.port }, "worklist API listening");
          resolve({ port: addr.port, host: addr.address, url: `http://${urlHost}:${addr.port}` });
        });
      });
    },
    async close() {
      unsubscribe();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (!server.listening) return;
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
