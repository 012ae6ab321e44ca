import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, SOP_CLASS } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { startListener, type DicomListener } from "../../src/dicom-listener/listener.ts";
import { freePort } from "../../src/peers/ports.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer } from "../../src/worklist/server.ts";
import { postgresUnavailable, startPostgres, type PrivatePostgres } from "../helpers/postgres.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { asNewStudy } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`PostgreSQL outage test: ${unavailable}`);

describe.runIf(requireSharedData() && !unavailable)("a node whose PostgreSQL is down", () => {
  const tmp = tempDir("cxr-pg-outage-");
  let pg: PrivatePostgres;
  let store: Store;
  let listener: DicomListener;
  let cfg: string;
  let api: ApiServer;
  let healthz: () => Promise<{ status: number; body: { status: string; reason?: string } }>;

  beforeAll(async () => {
    pg = await startPostgres();
    store = await openStore({ kind: "postgres", url: await pg.createDatabase(), nodeId: "node-1", leaseSeconds: 30 }, { dataDir: tmp.dir });
    cfg = writeStorescuConfig(tmp.dir);
    listener = await startListener({
      config: listenerConfigSchema.parse({ port: await freePort(), aeTitle: "CXR_PG", acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE] }),
      store,
      spoolDir: join(tmp.dir, "spool"),
      quarantineDir: join(tmp.dir, "quarantine"),
      logger: pino({ level: "silent" }),
    });
    api = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: ["outage-test-token-0123456789"] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
    });
    const base = (await api.listen(0, "127.0.0.1")).url;
    healthz = async () => {
      const r = await fetch(`${base}/healthz`);
      return { status: r.status, body: (await r.json()) as { status: string; reason?: string } };
    };
  });
  afterAll(async () => {
    await api?.close();
    await listener?.close();
    await store?.close();
    await pg?.stop();
    tmp.cleanup();
  });

  it("answers C-STORE with a failure (never success) and /healthz 503 with the reason while the database is down; stores again once it is back", async () => {
    const file = asNewStudy(join(SHARED_DICOM, "test1.dcm"), join(tmp.dir, "a.dcm"));
    const study = String(readDicom(file, { withPixelData: false }).dataset.StudyInstanceUID);
    const send = () => storescu({ port: listener.port, aec: "CXR_PG", cfg, files: [file] });
    expect((await send()).log).toMatch(/Received Store Response \(Success\)/);
    pg.pause();
    try {
      const r = await send();
      expect(r.log).toMatch(/Received Store Response \(Refused: OutOfResources/);
      expect(r.log).not.toMatch(/Store Response \(Success\)/);
      const down = await healthz();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ status: "store unavailable", reason: expect.stringMatching(/ECONNREFUSED|terminat|connect/i) });
    } finally {
      pg.resume();
    }
    expect(await healthz()).toMatchObject({ status: 200, body: { status: "ok", studies: 1 } });
    expect((await send()).log).toMatch(/Received Store Response \(Success\)/);
    expect(await store.instanceCount(study)).toBe(1);
    expect((await store.get(study))!.history.map((h) => h.state)).toEqual(["received"]);
  });
});
