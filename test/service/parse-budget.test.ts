import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConnection } from "node:net";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig, SOP_CLASS } from "../../src/config/service.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { freePort } from "../../src/peers/ports.ts";
import { startService, type RunningService } from "../../src/service.ts";
import { tempDir } from "../helpers/tmp.ts";
import { dataset, nestedSequences } from "./datasets.ts";
import { associateRq, element, pData, ui, us } from "./dimse-bytes.ts";

const AET = "CXR_BUDGET";

/**
 * One C-STORE over a raw association (the data set in 16 KiB PDVs, as a sender with that maximum
 * PDU length would): resolves with the C-STORE-RSP's status, and how long the answer took.
 */
function rawStore(port: number, sopInstanceUid: string, ds: Buffer): Promise<{ status?: number; ms: number }> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let associated = false;
    let sentAt = 0;
    const statusOf = (b: Buffer) => {
      // the (0000,0900) Status element of the response command
      const at = b.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00]));
      return at < 0 ? undefined : b.readUInt16LE(at + 8);
    };
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      const got = Buffer.concat(chunks);
      if (!associated && got[0] === 0x02) {
        associated = true;
        chunks.length = 0;
        const command = Buffer.concat([
          element(0x0002, ui(SOP_CLASS.SECONDARY_CAPTURE)), element(0x0100, us(1)), element(0x0110, us(1)), element(0x0700, us(0)),
          element(0x0800, us(0)), element(0x1000, ui(sopInstanceUid)),
        ]);
        sentAt = Date.now();
        socket.write(pData(1, 0x03, command));
        for (let at = 0; at < ds.length; at += 16 * 1024) socket.write(pData(1, at + 16 * 1024 >= ds.length ? 0x02 : 0x00, ds.subarray(at, at + 16 * 1024)));
        return;
      }
      const status = associated ? statusOf(got) : undefined;
      if (status !== undefined) {
        resolve({ status, ms: Date.now() - sentAt });
        socket.destroy();
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve({ ms: Date.now() - sentAt }));
    socket.write(associateRq(AET, "MODALITY", SOP_CLASS.SECONDARY_CAPTURE));
  });
}

describe("parse budgets: a hostile data set cannot stall the service", () => {
  const tmp = tempDir("cxr-budget-");
  let service: RunningService;
  let classifier: Classifier;
  beforeAll(async () => {
    initModelDir({ inputSize: 64, seed: 1, out: join(tmp.dir, "model") });
    classifier = await Classifier.load(join(tmp.dir, "model"));
    const config = resolveConfig({
      dataDir: join(tmp.dir, "data"),
      model: { dir: join(tmp.dir, "model") },
      dicom: { aeTitle: AET, port: await freePort(), acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE] },
      api: { httpPort: 0, tokens: ["budget-test-token-0123456789"] },
    });
    service = await startService(config, { logger: pino({ level: "silent" }), classifier });
  });
  afterAll(async () => {
    await service?.close();
    await classifier?.close();
    tmp.cleanup();
  });

  it("a 30,000-level nested data set sent by C-STORE is refused within seconds, quarantined with the reason, while /healthz answers within 1 s", async () => {
    const id = { sopClassUid: SOP_CLASS.SECONDARY_CAPTURE, sopInstanceUid: "1.2.826.0.1.3680043.8.498.1", studyInstanceUid: "1.2.826.0.1.3680043.8.498.2", seriesInstanceUid: "1.2.826.0.1.3680043.8.498.3" };
    const hostile = dataset({ explicit: true }, id, [nestedSequences({ explicit: true }, 30_000)]);
    expect(hostile.length).toBeGreaterThan(1_000_000);
    let probing = true;
    const latencies: number[] = [];
    const probe = (async () => {
      while (probing) {
        const started = Date.now();
        const res = await fetch(`${service.api!.url}/healthz`, { signal: AbortSignal.timeout(5000) });
        expect(res.status).toBe(200);
        latencies.push(Date.now() - started);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const answer = await rawStore(service.listener.port, id.sopInstanceUid, hostile);
    await new Promise((r) => setTimeout(r, 300));
    probing = false;
    await probe;
    expect(answer.status).toBe(0xc000); // Error: Cannot understand
    expect(answer.ms).toBeLessThan(5000);
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(1000);
    expect((await service.store.quarantined()).at(-1)?.reason).toMatch(/parse budget: sequences nested deeper than 32 levels/);
    expect(await service.store.get(id.studyInstanceUid)).toBeUndefined();
  });
});
