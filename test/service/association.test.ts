import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { SOP_CLASS } from "../../src/config/service.ts";
import type { DicomListener } from "../../src/dicom-listener/listener.ts";
import type { Store } from "../../src/store/roles.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { dataset } from "./datasets.ts";
import { associateRq, element, pData, pdu, ui, us } from "./dimse-bytes.ts";
import { startTestListener, waitFor } from "./helpers.ts";
import { echoscu, storescu } from "./peers.ts";

/** A-ABORT from the service provider (source 2) with `reason` (PS3.8 9.3.8). */
const abortBytes = (reason: number) => [0x07, 0, 0, 0, 0, 4, 0, 0, 2, reason];
const RELEASE_RQ = pdu(0x05, Buffer.alloc(4));

/** A raw connection: what it received, whether it was closed, and when. */
interface Raw {
  socket: Socket;
  received: () => Buffer;
  closed: Promise<number>;
}
function connect(port: number, send: Buffer[] = []): Raw {
  const socket = createConnection({ host: "127.0.0.1", port });
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  socket.on("error", () => undefined);
  const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now())));
  for (const b of send) socket.write(b);
  return { socket, received: () => Buffer.concat(chunks), closed };
}
/** An association opened and then held silent: resolves once it is accepted. */
async function silentAssociation(port: number, calling = "MODALITY"): Promise<Raw> {
  const raw = connect(port, [associateRq("CXR_SM", calling, SOP_CLASS.SECONDARY_CAPTURE)]);
  await waitFor("the A-ASSOCIATE-AC", () => raw.received()[0] === 0x02 || raw.received()[0] === 0x03, 5000, 10);
  return raw;
}
const lastTen = (b: Buffer) => [...b.subarray(b.length - 10)];

describe("association state machine (PS3.8) on raw sockets and with dcmtk", () => {
  const tmp = tempDir("cxr-assoc-");
  let store: Store;
  let listener: DicomListener;
  const idleSeconds = 1.5;
  beforeAll(async () => {
    ({ listener, store } = await startTestListener(tmp.dir, {
      aeTitle: "CXR_SM",
      acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE],
      maxAssociations: 4,
      maxAssociationsPerHost: 4,
      maxAssociationsPerCallingAe: 4,
      associationTimeoutSeconds: idleSeconds,
      artimTimeoutSeconds: 1,
    }));
  });
  afterAll(async () => {
    await listener?.close();
    await store?.close();
    tmp.cleanup();
  });

  it("one association per connection: after 20 A-ASSOCIATE-RQs on one connection it is aborted and every slot is free", async () => {
    const rq = associateRq("CXR_SM", "MODALITY", SOP_CLASS.SECONDARY_CAPTURE);
    const raw = connect(listener.port, Array.from({ length: 20 }, () => rq));
    await raw.closed;
    const got = raw.received();
    expect(got[0]).toBe(0x02); // the first is accepted
    expect(lastTen(got)).toEqual(abortBytes(2)); // the second is an unexpected PDU
    expect(listener.activeAssociations()).toBe(0);
    // all four slots can be taken again
    const held = await Promise.all(Array.from({ length: 4 }, () => silentAssociation(listener.port)));
    expect(held.map((h) => h.received()[0])).toEqual([2, 2, 2, 2]);
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
    await waitFor("the slots to be free", () => listener.activeAssociations() === 0, 2000, 10);
  });

  it("with every slot held by silent associations, a real storescu gets through within the idle timeout", async () => {
    if (!requireSharedData()) return;
    const held = await Promise.all(Array.from({ length: 4 }, () => silentAssociation(listener.port)));
    const start = Date.now();
    expect(listener.activeAssociations()).toBe(4);
    expect(await echoscu(listener.port, "CXR_SM")).toBe(false); // refused: no slot
    const file = join(SHARED_DICOM, "test1.dcm");
    let r = await storescu({ port: listener.port, aec: "CXR_SM", files: [file] });
    while (!/Received Store Response \(Success\)/.test(r.log) && Date.now() - start < 10_000) {
      await new Promise((res) => setTimeout(res, 100));
      r = await storescu({ port: listener.port, aec: "CXR_SM", files: [file] });
    }
    expect(r.log).toMatch(/Received Store Response \(Success\)/);
    expect(Date.now() - start).toBeLessThan(idleSeconds * 1000 + 1500);
    // the silent ones were aborted by the idle timeout (A-ABORT, reason not specified) and closed
    const closedAt = await Promise.all(held.map((h) => h.closed));
    for (const h of held) expect(lastTen(h.received())).toEqual(abortBytes(0));
    for (const t of closedAt) expect(t - start).toBeGreaterThanOrEqual(idleSeconds * 1000 - 100);
  });

  it("refuses protocol version 2 and an unknown application context (A-ASSOCIATE-RJ) and aborts a release request before any association", async () => {
    let raw = connect(listener.port, [associateRq("CXR_SM", "MODALITY", SOP_CLASS.SECONDARY_CAPTURE, { protocolVersion: 2 })]);
    await raw.closed;
    expect([...raw.received()]).toEqual([0x03, 0, 0, 0, 0, 4, 0, 1, 2, 2]); // permanent, ACSE provider, protocol version not supported
    raw = connect(listener.port, [associateRq("CXR_SM", "MODALITY", SOP_CLASS.SECONDARY_CAPTURE, { applicationContext: "1.2.3.4.5" })]);
    await raw.closed;
    expect([...raw.received()]).toEqual([0x03, 0, 0, 0, 0, 4, 0, 1, 1, 2]); // permanent, service user, application context name not supported
    raw = connect(listener.port, [RELEASE_RQ]);
    await raw.closed;
    expect([...raw.received()]).toEqual(abortBytes(2));
    expect(listener.activeAssociations()).toBe(0);
  });

  it("aborts a C-STORE on a presentation context negotiated for Verification", async () => {
    const command = Buffer.concat([element(0x0002, ui(SOP_CLASS.SECONDARY_CAPTURE)), element(0x0100, us(1)), element(0x0110, us(1)), element(0x0800, us(0)), element(0x1000, ui("1.2.3.4"))]);
    const raw = connect(listener.port, [associateRq("CXR_SM", "MODALITY", SOP_CLASS.VERIFICATION)]);
    await waitFor("the A-ASSOCIATE-AC", () => raw.received()[0] === 0x02, 5000, 10);
    raw.socket.write(pData(1, 0x03, command));
    await raw.closed;
    expect(lastTen(raw.received())).toEqual(abortBytes(6));
    expect(listener.activeAssociations()).toBe(0);
  });

  it("aborts a second C-STORE-RQ sent before the first one was answered (no asynchronous operations negotiated)", async () => {
    const id = { sopClassUid: SOP_CLASS.SECONDARY_CAPTURE, sopInstanceUid: "1.2.826.0.1.3680043.8.498.7", studyInstanceUid: "1.2.826.0.1.3680043.8.498.8", seriesInstanceUid: "1.2.826.0.1.3680043.8.498.9" };
    const store1 = (sop: string) => [
      pData(1, 0x03, Buffer.concat([element(0x0002, ui(SOP_CLASS.SECONDARY_CAPTURE)), element(0x0100, us(1)), element(0x0110, us(1)), element(0x0800, us(0)), element(0x1000, ui(sop))])),
      pData(1, 0x02, dataset({ explicit: true }, { ...id, sopInstanceUid: sop })),
    ];
    const raw = connect(listener.port, [associateRq("CXR_SM", "MODALITY", SOP_CLASS.SECONDARY_CAPTURE), ...store1(id.sopInstanceUid), ...store1(`${id.sopInstanceUid}.1`)]);
    await raw.closed;
    expect(lastTen(raw.received())).toEqual(abortBytes(2));
    expect(listener.activeAssociations()).toBe(0);
  });

  it("a release is answered and the slot freed; a connection that never asks for an association is closed when ARTIM expires", async () => {
    const raw = await silentAssociation(listener.port);
    raw.socket.write(RELEASE_RQ);
    await raw.closed;
    expect([...raw.received().subarray(-10)]).toEqual([0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    expect(listener.activeAssociations()).toBe(0);
    const start = Date.now();
    const mute = connect(listener.port);
    const closedAt = await mute.closed;
    expect(closedAt - start).toBeGreaterThanOrEqual(900);
    expect(closedAt - start).toBeLessThan(3000);
    expect(await echoscu(listener.port, "CXR_SM")).toBe(true);
  });
});

describe("association limits per calling AE title and per host", () => {
  it("one calling AE, or one host, cannot take every slot", async () => {
    const tmp = tempDir("cxr-assoc-limits-");
    const { listener, store } = await startTestListener(tmp.dir, { aeTitle: "CXR_SM", acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE], maxAssociations: 5, maxAssociationsPerCallingAe: 2, maxAssociationsPerHost: 3 });
    try {
      const held = await Promise.all([silentAssociation(listener.port, "GREEDY"), silentAssociation(listener.port, "GREEDY")]);
      const third = await silentAssociation(listener.port, "GREEDY");
      expect([...third.received()]).toEqual([0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2]); // transient, presentation provider, local limit exceeded
      expect(await echoscu(listener.port, "CXR_SM", "MODALITY")).toBe(true);
      // one host: a third association from 127.0.0.1, whatever its AE title, is over maxAssociationsPerHost
      const otherAe = await silentAssociation(listener.port, "OTHER");
      expect(otherAe.received()[0]).toBe(0x02);
      const fromSameHost = await silentAssociation(listener.port, "THIRD");
      expect([...fromSameHost.received()]).toEqual([0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2]);
      expect(listener.activeAssociations()).toBe(3);
      for (const h of [...held, otherAe]) h.socket.destroy();
    } finally {
      await listener.close();
      await store.close();
      tmp.cleanup();
    }
  });
});
