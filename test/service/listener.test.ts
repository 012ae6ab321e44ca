import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, SOP_CLASS } from "../../src/config/service.ts";
import { startListener, type DicomListener } from "../../src/dicom-listener/listener.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { recoverSpool } from "../../src/intake/recover.ts";
import { openSqliteStore, type InstanceRecord, type Store } from "../../src/store/index.ts";
import { freePort } from "../../src/peers/ports.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { associateRq, element, pData, ui, us } from "./dimse-bytes.ts";
import { startTestListener, waitFor } from "./helpers.ts";
import { echoscu, storescu, writeStorescuConfig } from "./peers.ts";

/** Opens an association, sends `after` once it is accepted, and resolves with everything received when the listener closes it. */
function rawAssociation(port: number, after: Buffer[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const received: Buffer[] = [];
    let sent = false;
    socket.on("data", (d: Buffer) => {
      received.push(d);
      if (!sent && d[0] === 0x02) {
        sent = true;
        for (const b of after) socket.write(b);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(Buffer.concat(received)));
    socket.write(associateRq("CXR_TEST", "MODALITY", SOP_CLASS.DX_PRESENTATION));
  });
}

describe("C-ECHO / C-STORE SCP against dcmtk storescu", () => {
  const tmp = tempDir("cxr-listener-");
  let store: Store;
  let listener: DicomListener;
  let cfg: string;
  beforeAll(async () => {
    cfg = writeStorescuConfig(tmp.dir);
    ({ listener, store } = await startTestListener(tmp.dir, {
      aeTitle: "CXR_TEST",
      allowedCallingAeTitles: ["MODALITY"],
      // The shared chest films are Secondary Capture wrappers; this site accepts them.
      acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE],
    }));
  });
  afterAll(async () => {
    await listener?.close();
    await store?.close();
    tmp.cleanup();
  });

  it("answers C-ECHO and refuses unknown calling or called AE titles", async () => {
    expect(await echoscu(listener.port, "CXR_TEST")).toBe(true);
    expect(await echoscu(listener.port, "CXR_TEST", "STRANGER")).toBe(false);
    expect(await echoscu(listener.port, "OTHER_AE")).toBe(false);
  });

  it("stores instances as sent (compressed stays compressed), byte-identical dataset, recorded before success", async () => {
    if (!requireSharedData()) return;
    const files = ["test1.dcm", "rsna_cr_jpeg_baseline.dcm", "RG2_J2KR.dcm", "RG2_JLSL.dcm", "RG2_RLE.dcm"].map((f) => join(SHARED_DICOM, f));
    const r = await storescu({ port: listener.port, aec: "CXR_TEST", cfg, files });
    expect(r.code).toBe(0);
    expect(r.log.match(/Received Store Response \(Success\)/g)).toHaveLength(files.length);
    for (const f of files) {
      const src = readDicom(f, { withPixelData: false });
      const sop = String(src.dataset.SOPInstanceUID);
      const rows = (await store.instances(String(src.dataset.StudyInstanceUID))).filter((i) => i.sopInstanceUid === sop);
      expect(rows, f).toHaveLength(1);
      const spooled = readDicom(rows[0]!.path);
      expect(spooled.transferSyntaxUid).toBe(src.transferSyntaxUid);
      // the pixel data (from its tag on) is the sender's, byte for byte: never transcoded
      const pixelTag = Buffer.from([0xe0, 0x7f, 0x10, 0x00]);
      const tail = (buf: Buffer) => buf.subarray(buf.indexOf(pixelTag));
      const sent = tail(readFileSync(f));
      const received = tail(readFileSync(rows[0]!.path));
      // (storescu drops a trailing (FFFC,FFFC) padding element, so compare up to the end of what arrived)
      expect(received.length).toBeGreaterThan(sent.length - 200);
      expect(Buffer.compare(sent.subarray(0, received.length), received), f).toBe(0);
      expect((await store.get(String(src.dataset.StudyInstanceUID)))?.state).toBe("received");
    }
    expect(readdirSync(join(tmp.dir, "spool", "incoming"))).toEqual([]);
  });

  it("spool recovery records instances whose store commits were lost (power loss), with the same hash", async () => {
    if (!requireSharedData()) return;
    // What each store knows of the spooled instances (the fields recovery must reproduce).
    const known = async (s: Store) => {
      const all: Pick<InstanceRecord, "sopInstanceUid" | "path" | "sha256" | "size" | "transferSyntaxUid">[] = [];
      for (const study of await s.list()) for (const i of await s.instances(study.studyInstanceUid)) all.push({ sopInstanceUid: i.sopInstanceUid, path: i.path, sha256: i.sha256, size: i.size, transferSyntaxUid: i.transferSyntaxUid });
      return all.sort((a, b) => a.sopInstanceUid.localeCompare(b.sopInstanceUid));
    };
    const before = await known(store);
    expect(before.length).toBeGreaterThan(0);
    // Every commit lost: an empty store next to the same spool.
    const lost = openSqliteStore(join(tmp.dir, "lost.sqlite"));
    try {
      expect(await recoverSpool(lost, join(tmp.dir, "spool"), pino({ level: "silent" }))).toBe(before.length);
      expect(await known(lost)).toEqual(before);
      expect(await recoverSpool(lost, join(tmp.dir, "spool"), pino({ level: "silent" }))).toBe(0);
    } finally {
      await lost.close();
    }
  });

  it("a second identical copy changes nothing", async () => {
    if (!requireSharedData()) return;
    const f = join(SHARED_DICOM, "test2.dcm");
    expect((await storescu({ port: listener.port, aec: "CXR_TEST", cfg, files: [f, f] })).code).toBe(0);
    const study = String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID);
    expect(await store.instanceCount(study)).toBe(1);
    expect((await store.get(study))?.history.map((h) => h.state)).toEqual(["received"]);
  });

  it("files an instance again after its study folder was removed behind the listener's back", async () => {
    if (!requireSharedData()) return;
    const f = join(SHARED_DICOM, "test2.dcm");
    const study = String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID);
    rmSync(join(tmp.dir, "spool", study), { recursive: true });
    const r = await storescu({ port: listener.port, aec: "CXR_TEST", cfg, files: [f] });
    expect(r.log).toMatch(/Received Store Response \(Success\)/);
    expect(readdirSync(join(tmp.dir, "spool", study))).toHaveLength(1);
  });

  it("answers Out of Resources (A700) when the spool file or the study folder cannot be made, records nothing, and stores again once they can", async () => {
    if (!requireSharedData()) return;
    const f = join(SHARED_DICOM, "test3.dcm");
    const study = String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID);
    const spool = join(tmp.dir, "spool");
    const incoming = join(spool, "incoming");
    const send = () => storescu({ port: listener.port, aec: "CXR_TEST", cfg, files: [f] });
    // (Permissions would not stop the tests' root user: a plain file where a folder must be does.)
    rmSync(incoming, { recursive: true });
    writeFileSync(incoming, "not a folder");
    let r = await send();
    expect(r.log).toMatch(/Received Store Response \(Refused: OutOfResources/);
    expect(await store.instances(study)).toEqual([]);
    rmSync(incoming);
    mkdirSync(incoming);
    // (The failed attempt may already have made the study folder, from the header in its first fragment.)
    rmSync(join(spool, study), { recursive: true, force: true });
    writeFileSync(join(spool, study), "where the study folder would go");
    r = await send();
    expect(r.log).toMatch(/Received Store Response \(Refused: OutOfResources/);
    expect(await store.instances(study)).toEqual([]);
    expect(readdirSync(incoming)).toEqual([]); // the abandoned spool file is removed, not left behind
    rmSync(join(spool, study));
    r = await send();
    expect(r.log).toMatch(/Received Store Response \(Success\)/);
    expect(await store.instances(study)).toHaveLength(1);
  });

  it("refuses an unsupported SOP class (CT) at association", async () => {
    if (!requireSharedData()) return;
    const r = await storescu({ port: listener.port, aec: "CXR_TEST", cfg, files: [join(SHARED_DICOM, "CT_small.dcm")] });
    expect(r.code).not.toBe(0);
    expect(r.log).toMatch(/No presentation context|no acceptable presentation contexts/i);
  });

  it("answers a failure status for a dataset it cannot parse, quarantines it, and keeps serving", async () => {
    if (!requireSharedData()) return;
    // A CR whose dataset stops in the middle of an element header: storescu sends what it can read
    const src = readFileSync(join(SHARED_DICOM, "test3.dcm"));
    const bad = Buffer.from(src);
    // Make the Study Instance UID invalid (letters in a UI): parseable, but not a valid study to file
    const at = bad.indexOf(Buffer.from(String(readDicom(join(SHARED_DICOM, "test3.dcm"), { withPixelData: false }).dataset.StudyInstanceUID)));
    expect(at).toBeGreaterThan(0);
    bad.write("X.Y", at, "latin1");
    const badPath = join(tmp.dir, "bad-uid.dcm");
    writeFileSync(badPath, bad);
    const r = await storescu({ port: listener.port, aec: "CXR_TEST", cfg, files: [badPath] });
    expect(r.log).toMatch(/Received Store Response \(Error: DataSetDoesNotMatchSOPClass\)/);
    const q = await store.quarantined();
    expect(q.at(-1)?.reason).toMatch(/missing or invalid studyInstanceUid/);
    expect(readdirSync(join(tmp.dir, "quarantine")).length).toBeGreaterThan(0);
    expect(await echoscu(listener.port, "CXR_TEST")).toBe(true);
  });

  it("aborts an association whose command set is malformed or whose C-STORE data comes on another context, and keeps serving", async () => {
    const abort = [0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6];
    // A command element outside group 0000.
    let got = await rawAssociation(listener.port, [pData(1, 0x03, element(0x0010, Buffer.from("AB"), 0x0008))]);
    expect(got[0]).toBe(0x02); // accepted first
    expect([...got.subarray(got.length - 10)]).toEqual(abort);
    // A C-STORE-RQ on context 1, then its data set on context 3 (never proposed).
    const command = Buffer.concat([element(0x0002, ui(SOP_CLASS.DX_PRESENTATION)), element(0x0100, us(1)), element(0x0110, us(7)), element(0x0800, us(0)), element(0x1000, ui("1.2.3.4"))]);
    got = await rawAssociation(listener.port, [pData(1, 0x03, command), pData(3, 0x02, Buffer.alloc(16))]);
    expect([...got.subarray(got.length - 10)]).toEqual(abort);
    // The partial spool file of the cut-off C-STORE is removed when the listener's side of the connection closes.
    await waitFor("the partial spool file to be removed", () => readdirSync(join(tmp.dir, "spool", "incoming")).length === 0, 2000, 20);
    expect(await echoscu(listener.port, "CXR_TEST")).toBe(true);
  });

  it("aborts a peer whose PDU length field is over the limit (A-ABORT, invalid PDU parameter value) and keeps serving", async () => {
    // An A-ASSOCIATE-RQ header claiming 100 MB: refused from its 6 header bytes, nothing buffered.
    const socket = createConnection({ host: "127.0.0.1", port: listener.port });
    const received: Buffer[] = [];
    socket.on("data", (d: Buffer) => received.push(d));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => undefined);
    const header = Buffer.from([0x01, 0x00, 0, 0, 0, 0]);
    header.writeUInt32BE(100_000_000, 2);
    socket.write(header);
    await closed;
    expect([...Buffer.concat(received)]).toEqual([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6]);
    expect(listener.activeAssociations()).toBe(0);
    expect(await echoscu(listener.port, "CXR_TEST")).toBe(true);
  });
});

describe("maximum associations", () => {
  it("refuses an association beyond maxAssociations while one is open, and accepts again after", async () => {
    if (!requireSharedData()) return;
    const tmp = tempDir("cxr-maxassoc-");
    const store = openSqliteStore(join(tmp.dir, "store.sqlite"));
    const listener = await startListener({
      config: listenerConfigSchema.parse({ port: await freePort(), aeTitle: "CXR_ONE", maxAssociations: 1, acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE] }),
      store,
      spoolDir: join(tmp.dir, "spool"),
      quarantineDir: join(tmp.dir, "quarantine"),
      logger: pino({ level: "silent" }),
    });
    try {
      const files = Array.from({ length: 60 }, () => join(SHARED_DICOM, "test1.dcm"));
      const first = storescu({ port: listener.port, aec: "CXR_ONE", files });
      const deadline = Date.now() + 10_000;
      while (listener.activeAssociations() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(listener.activeAssociations()).toBe(1);
      expect(await echoscu(listener.port, "CXR_ONE")).toBe(false);
      expect((await first).code).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      expect(await echoscu(listener.port, "CXR_ONE")).toBe(true);
    } finally {
      await listener.close();
      await store.close();
      tmp.cleanup();
    }
  });
});

describe("DICOM TLS when a certificate is configured", () => {
  it("accepts C-STORE over TLS from storescu (+tls) and refuses plain TCP", async () => {
    if (!requireSharedData()) return;
    const tmp = tempDir("cxr-tls-");
    const key = join(tmp.dir, "node.key");
    const cert = join(tmp.dir, "node.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], { stdio: "ignore" });
    const store = openSqliteStore(join(tmp.dir, "store.sqlite"));
    const listener = await startListener({
      config: listenerConfigSchema.parse({ port: await freePort(), aeTitle: "CXR_TLS", acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE], tls: { cert, key } }),
      store,
      spoolDir: join(tmp.dir, "spool"),
      quarantineDir: join(tmp.dir, "quarantine"),
      logger: pino({ level: "silent" }),
    });
    try {
      const file = join(SHARED_DICOM, "test1.dcm");
      // storescu authenticates with the same key pair and trusts the node's certificate
      const tls = await storescu({ port: listener.port, aec: "CXR_TLS", files: [file], extraArgs: ["+tls", key, cert, "+cf", cert] });
      expect(tls.log, tls.log).toMatch(/Received Store Response \(Success\)/);
      expect(await store.instanceCount(String(readDicom(file, { withPixelData: false }).dataset.StudyInstanceUID))).toBe(1);
      expect(await echoscu(listener.port, "CXR_TLS")).toBe(false);
    } finally {
      await listener.close();
      await store.close();
      tmp.cleanup();
    }
  });
});
