import { afterEach, describe, expect, it } from "vitest";
import { readFileSync, readdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { SOP_CLASS } from "../../src/config/service.ts";
import { instanceFromSpoolFile, recoverSpooledInstances, Spool, type SpoolRequest } from "../../src/dicom-listener/spool.ts";
import { STORE_STATUS } from "../../src/dicom-listener/store-response.ts";
import { openSqliteStore } from "../../src/store/open.ts";
import type { Store } from "../../src/store/roles.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const IMPLICIT_LE = "1.2.840.10008.1.2";
const logger = pino({ level: "silent" });

/** test1.dcm (Implicit VR Little Endian SC): its data set bytes and UIDs. */
function sample(): { dataset: Buffer; sop: string; study: string } {
  const file = readFileSync(join(SHARED_DICOM, "test1.dcm"));
  const dataset = file.subarray(132 + 12 + file.readUInt32LE(140));
  return { dataset, sop: "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888", study: "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708" };
}
/** The same data set under another Study Instance UID (same length: one digit changed). */
function underStudy(dataset: Buffer, study: string, otherStudy: string): Buffer {
  const out = Buffer.from(dataset);
  out.write(otherStudy, out.indexOf(study), "latin1");
  return out;
}
const request = (sop: string): SpoolRequest => ({ sopClassUid: SOP_CLASS.SECONDARY_CAPTURE, sopInstanceUid: sop, transferSyntaxUid: IMPLICIT_LE, callingAeTitle: "MODALITY" });

/** Spools `dataset` in fragments as the network delivers them. */
async function spoolOne(spool: Spool, sop: string, dataset: Buffer, fragment = 16384) {
  const file = spool.receive(request(sop));
  for (let at = 0; at < dataset.length; at += fragment) file.append(dataset.subarray(at, at + fragment));
  return spool.finish(file);
}

describe("spool (no sockets)", () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Store | undefined;
  let spool: Spool | undefined;
  afterEach(async () => {
    await spool?.close();
    await store?.close();
    store = undefined;
    tmp?.cleanup();
  });
  const open = () => {
    tmp = tempDir("cxr-spool-");
    store = openSqliteStore(join(tmp.dir, "store.sqlite"));
    spool = new Spool({ spoolDir: join(tmp.dir, "spool"), quarantineDir: join(tmp.dir, "quarantine"), quarantineLog: store, logger });
    return { spool, store, spoolDir: join(tmp.dir, "spool") };
  };

  it("receiving and recovery describe a spooled instance the same way (one record, one content hash)", async () => {
    if (!requireSharedData()) return;
    const { spool } = open();
    const { dataset, sop, study } = sample();
    const r = await spoolOne(spool, sop, dataset);
    expect(r.status).toBe(STORE_STATUS.success);
    expect(r.instance).toMatchObject({ sopInstanceUid: sop, studyInstanceUid: study, size: dataset.length, transferSyntaxUid: IMPLICIT_LE, callingAeTitle: "MODALITY" });
    expect(r.instance!.path).toBe(join(tmp.dir, "spool", study, `${sop}.dcm`));
    // the file is the data set exactly as sent, behind the Part 10 header
    expect(Buffer.compare(readFileSync(r.instance!.path).subarray(-dataset.length), dataset)).toBe(0);
    expect(instanceFromSpoolFile(r.instance!.path)).toEqual(r.instance);
  });

  it("quarantines a data set whose SOP Instance UID is not the C-STORE's, with the reason", async () => {
    if (!requireSharedData()) return;
    const { spool, store } = open();
    const { dataset } = sample();
    const r = await spoolOne(spool, "1.2.3.4", dataset);
    expect(r.status).toBe(STORE_STATUS.datasetMismatch);
    expect((await store.quarantined())[0]?.reason).toMatch(/differs from the C-STORE's Affected SOP Instance UID/);
    expect(readdirSync(join(tmp.dir, "quarantine"))).toHaveLength(1);
    expect(readdirSync(join(tmp.dir, "spool", "incoming"))).toEqual([]);
  });

  /**
   * One SOP Instance spooled and recorded under its study, then re-sent under another study and
   * spooled (not recorded); the re-sent copy is the newer one on disk.
   */
  const sentUnderTwoStudies = async () => {
    const { spool, store, spoolDir } = open();
    const { dataset, sop, study } = sample();
    const otherStudy = study.replace(/8$/, "9");
    const first = await spoolOne(spool, sop, dataset);
    await store.addInstance(first.instance!);
    const resent = await spoolOne(spool, sop, underStudy(dataset, study, otherStudy));
    utimesSync(first.instance!.path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    return { store, spoolDir, sop, study, otherStudy, resent };
  };

  it("recovery keys copies by study and instance: a SOP Instance re-sent under another study is never moved back by its stale copy", async () => {
    if (!requireSharedData()) return;
    const { store, spoolDir, sop, study, otherStudy, resent } = await sentUnderTwoStudies();
    await store.addInstance(resent.instance!);
    expect((await store.instances(otherStudy)).map((i) => i.sopInstanceUid)).toEqual([sop]);
    // every restart: nothing to record, the instance stays with its newer study
    expect(await recoverSpooledInstances(store, spoolDir, logger)).toBe(0);
    expect(await recoverSpooledInstances(store, spoolDir, logger)).toBe(0);
    expect(await store.instances(study)).toEqual([]);
    expect(await store.instances(otherStudy)).toHaveLength(1);
    // the store lost both commits (power loss: an empty store beside the same spool): only the newest copy is recorded
    const lost = openSqliteStore(join(tmp.dir, "lost.sqlite"));
    try {
      expect(await recoverSpooledInstances(lost, spoolDir, logger)).toBe(1);
      expect((await lost.instances(otherStudy)).map((i) => i.sha256)).toEqual([resent.instance!.sha256]);
      expect(await lost.instances(study)).toEqual([]);
    } finally {
      await lost.close();
    }
  });

  it("recovery records the newer copy when the store kept only the older study's commit", async () => {
    if (!requireSharedData()) return;
    const { store, spoolDir, sop, study, otherStudy } = await sentUnderTwoStudies(); // the re-sent copy's store commit lost
    expect(await recoverSpooledInstances(store, spoolDir, logger)).toBe(1);
    expect((await store.instances(otherStudy)).map((i) => i.sopInstanceUid)).toEqual([sop]);
    expect(await store.instances(study)).toEqual([]);
  });
});
