import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { redact, secretScrubber } from "../../src/config/secrets.ts";
import { resolveConfig, type ServiceConfig } from "../../src/config/service.ts";
import { destinationName, Exporter } from "../../src/export/exporter.ts";
import { openStore } from "../../src/store/open.ts";
import type { Store } from "../../src/store/roles.ts";
import { serviceLogger } from "../../src/service.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer } from "../../src/worklist/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { CXR_BIN, interrupt, spawnCxr, waitFor } from "./serve-process.ts";

const TOKEN = "secrets-token-0123456789abcdef";
const STOW_PASSWORD = "stow-pass-1234";
const STOW_QUERY_TOKEN = "query-token-5678";
const API_KEY = "api-key-from-env-9999";
const PACS_PASSWORD = "pacs-pass-9012";
const STUDY = "1.2.826.0.1.3680043.8.498.77";

/** An HTTP peer that records each request and answers with the next status of `statuses` (then 200). */
async function recordingPeer(statuses: number[]): Promise<{ server: Server; url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    req.resume();
    req.on("end", () => res.writeHead(statuses.shift() ?? 200, { "content-type": "application/dicom+json" }).end("[]"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

// A STOW destination with user-info, a query token and an API key header (from the environment), and a
// PACS DICOMweb URL with a password (from a file): none of them may show in the API, metrics or logs.
describe("secrets of the configuration", () => {
  const tmp = tempDir("cxr-secrets-");
  const lines: string[] = [];
  let stow: Awaited<ReturnType<typeof recordingPeer>>;
  let pacs: Awaited<ReturnType<typeof recordingPeer>>;
  let config: ServiceConfig;
  let store: Store;
  let api: ApiServer;
  let base: string;
  const metrics = createMetrics({ defaultMetrics: false });

  beforeAll(async () => {
    stow = await recordingPeer([503]);
    pacs = await recordingPeer([]);
    process.env.CXR_TEST_STOW_API_KEY = API_KEY;
    writeFileSync(join(tmp.dir, "pacs-url"), `http://viewer:${PACS_PASSWORD}@${pacs.url}/dicom-web\n`);
    config = resolveConfig({
      dataDir: tmp.dir,
      logLevel: "debug",
      export: {
        destinations: [
          {
            kind: "stow",
            name: "archive",
            url: `http://stowuser:${STOW_PASSWORD}@${stow.url}/dicom-web?access_token=${STOW_QUERY_TOKEN}`,
            headers: { "X-Api-Key": { env: "CXR_TEST_STOW_API_KEY" } },
          },
        ],
        retryInitialSeconds: 0.01,
      },
      api: { tokens: [TOKEN], pacsDicomWebUrl: { file: join(tmp.dir, "pacs-url") } },
    });
    const logger = serviceLogger(config, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    store = await openStore(config.store, { dataDir: tmp.dir });
    const srPath = join(tmp.dir, "result.sr.dcm");
    writeFileSync(srPath, "DICM stand-in bytes: the recording peer does not parse them");
    await store.addInstance({
      sopInstanceUid: `${STUDY}.1.1`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1.1", studyInstanceUid: STUDY, seriesInstanceUid: `${STUDY}.1`,
      transferSyntaxUid: "1.2.840.10008.1.2.1", path: srPath, sha256: "00", size: 1, callingAeTitle: "MODALITY", header: { modality: "DX" },
    });
    await store.transition(STUDY, "queued");
    expect(await store.claimNext()).toBe(STUDY);
    await store.recordResults(STUDY, {
      processedKey: "k", findings: [], heatmaps: [], model: { name: "m", version: "1", deviceUid: "2.25.1", training: "untrained" },
      outputs: [{ sopInstanceUid: "2.25.7", studyInstanceUid: STUDY, kind: "sr", sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34", path: srPath }],
      destinations: config.export.destinations.map(destinationName),
    });
    const exporter = new Exporter({ store, config, logger, metrics });
    expect(await exporter.exportStudy(STUDY)).toBeGreaterThan(0); // 503: a failure, retried
    expect(await exporter.exportStudy(STUDY)).toBeUndefined(); // 200: exported
    api = createApiServer({ store, config, metrics, logger });
    base = (await api.listen(0, "127.0.0.1")).url;
  });
  afterAll(async () => {
    await api?.close();
    await store?.close();
    stow?.server.close();
    pacs?.server.close();
    delete process.env.CXR_TEST_STOW_API_KEY;
    tmp.cleanup();
  });

  const SECRETS = [STOW_PASSWORD, STOW_QUERY_TOKEN, API_KEY, PACS_PASSWORD, TOKEN];
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  const get = (path: string) => fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });

  it("reaches the STOW peer with every secret, the user-info as HTTP Basic authentication", () => {
    expect(stow.requests).toHaveLength(2);
    for (const req of stow.requests) {
      expect(req.url).toBe(`/dicom-web/studies?access_token=${STOW_QUERY_TOKEN}`);
      expect(req.headers.authorization).toBe(basic("stowuser", STOW_PASSWORD));
      expect(req.headers["x-api-key"]).toBe(API_KEY);
    }
  });

  it("GET /api/config hides user-info, query values, header values and tokens, and shows the rest", async () => {
    const text = await (await get("/api/config")).text();
    for (const s of SECRETS) expect(text).not.toContain(s);
    const cfg = JSON.parse(text) as ServiceConfig;
    expect(cfg.export.destinations[0]).toMatchObject({
      name: "archive",
      url: `http://[hidden]@${stow.url}/dicom-web?access_token=[hidden]`,
      headers: { "X-Api-Key": "[hidden]" },
    });
    expect(cfg.api.pacsDicomWebUrl).toBe(`http://[hidden]@${pacs.url}/dicom-web`);
    expect(cfg.api.tokens).toEqual(["[hidden]"]);
  });

  it("metrics name the destination, not its URL", async () => {
    const r = await fetch(`${base}/metrics`);
    const text = await r.text();
    expect(text).toContain('cxr_export_failures_total{destination="archive"} 1');
    expect(text).toContain('cxr_exports_total{destination="archive"} 1');
    for (const s of [...SECRETS, stow.url]) expect(text).not.toContain(s);
  });

  it("the viewer's proxy reaches the PACS with the password as HTTP Basic authentication; study links carry no password", async () => {
    const r = await get("/viewer/dicom-web/studies");
    expect(r.status).toBe(200);
    expect(pacs.requests.at(-1)?.headers.authorization).toBe(basic("viewer", PACS_PASSWORD));
    const detail = await (await get(`/api/studies/${STUDY}`)).text();
    for (const s of SECRETS) expect(detail).not.toContain(s);
    expect(JSON.parse(detail).pacs.sr).toBe(`http://[hidden]@${pacs.url}/dicom-web/studies/${STUDY}/instances?SOPInstanceUID=2.25.7`);
  });

  it("the logs carry none of the secrets, also where a message quotes a configured URL", () => {
    const logger = serviceLogger(config, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    logger.warn({ err: `connect ECONNREFUSED http://viewer:${PACS_PASSWORD}@${pacs.url}/dicom-web` }, "a library quoted the URL");
    const text = lines.join("");
    expect(text).toContain("export failed; will retry");
    expect(text).toContain("archive: HTTP 503");
    expect(text).toContain("a library quoted the URL");
    for (const s of [...SECRETS, basic("stowuser", STOW_PASSWORD).slice(6), basic("viewer", PACS_PASSWORD).slice(6)]) expect(text).not.toContain(s);
  });
});

describe("cxr serve without configured tokens", () => {
  it("shows the generated token to the operator on stderr, never in the (JSON) log", async () => {
    const tmp = tempDir("cxr-serve-token-");
    try {
      execFileSync(process.execPath, [CXR_BIN, "model", "init", "--seed", "1", "--input-size", "64", "--out", join(tmp.dir, "model")]);
      const log = join(tmp.dir, "serve.log");
      const { child, output } = spawnCxr(["serve", "--data-dir", join(tmp.dir, "data"), "--model", join(tmp.dir, "model"), "--port", "0", "--http-port", "0"], log);
      const line = await waitFor("the worklist address on stderr", 120_000, () => /this run's worklist: (http:\S+)\?token=(\S+)/.exec(output()) ?? undefined, log);
      const token = line[2]!;
      expect((await fetch(`${line[1]}api/studies`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await interrupt(child)).code).toBe(0);
      const jsonLines = output().split("\n").filter((l) => l.startsWith("{"));
      expect(jsonLines.some((l) => l.includes("generated a bearer token"))).toBe(true);
      for (const l of jsonLines) expect(l).not.toContain(token);
    } finally {
      tmp.cleanup();
    }
  });
});

describe("the redaction rule", () => {
  it.each([
    ["http://u:p@h:1/x?a=1&b=two#f", "", "http://[hidden]@h:1/x?a=[hidden]&b=[hidden]#f"],
    ["http://h/x", "", "http://h/x"],
    ["not a url: http://u:p@h", "", "not a url: http://u:p@h"],
    ["abc", "password", "[hidden]"],
    ["Bearer abc", "authorization", "[hidden]"],
  ])("redact(%j, %j) is %j", (value, key, shown) => {
    expect(redact(value, key)).toBe(shown);
  });

  it("hides every header value and secret-keyed value, whatever its shape", () => {
    expect(redact({ headers: { Accept: "x", "X-Api-Key": "k" }, apiKey: 42, tokens: ["a", "b"], name: "n" })).toEqual({
      headers: { Accept: "[hidden]", "X-Api-Key": "[hidden]" },
      apiKey: "[hidden]",
      tokens: ["[hidden]", "[hidden]"],
      name: "n",
    });
  });

  it("the scrubber replaces raw, URL-encoded and JSON-escaped forms", () => {
    const scrub = secretScrubber({ url: 'http://u:pa%20ss"w@h/', headers: { K: 'va"lue' } });
    expect(scrub('x pa ss"w y pa%20ss%22w z va\\"lue')).toBe("x [hidden] y [hidden] z [hidden]");
  });
});
