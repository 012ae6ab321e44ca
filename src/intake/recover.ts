import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { parseDicom } from "../dicom/read.ts";
import { extractHeader } from "./header.ts";
import type { IntakeStore } from "../store/roles.ts";

/**
 * The spool is the durable record of what was acknowledged: each file and its folder entry are
 * fsynced before the C-STORE success, while the store commits without an fsync of its own (WAL,
 * synchronous=NORMAL; a process crash loses nothing, a power loss may lose the last commits). At
 * start, instances on disk that the store does not know are recorded again from their files.
 */
export async function recoverSpool(store: IntakeStore, spoolDir: string, logger: Logger): Promise<number> {
  if (!existsSync(spoolDir)) return 0;
  let recovered = 0;
  for (const study of readdirSync(spoolDir, { withFileTypes: true })) {
    if (!study.isDirectory() || study.name === "incoming") continue;
    for (const name of readdirSync(join(spoolDir, study.name))) {
      if (!name.endsWith(".dcm")) continue;
      const path = join(spoolDir, study.name, name);
      if (await store.hasInstanceAt(path)) continue;
      try {
        const bytes = readFileSync(path);
        // The hash covers the dataset as received, after the meta header the listener wrote.
        const datasetStart = 132 + 12 + bytes.readUInt32LE(140);
        const file = parseDicom(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path, { withPixelData: false });
        const h = extractHeader(file.dataset);
        if (!h.sopInstanceUid || !h.studyInstanceUid || !h.seriesInstanceUid) throw new Error("missing identifying UIDs");
        await store.addInstance({
          sopInstanceUid: h.sopInstanceUid,
          sopClassUid: h.sopClassUid ?? "",
          studyInstanceUid: h.studyInstanceUid,
          seriesInstanceUid: h.seriesInstanceUid,
          transferSyntaxUid: file.transferSyntaxUid,
          path,
          sha256: createHash("sha256").update(bytes.subarray(datasetStart)).digest("hex"),
          size: bytes.length - datasetStart,
          callingAeTitle: String(file.meta.SourceApplicationEntityTitle ?? "").trim(),
          header: h.header,
          patientName: h.patientName,
          patientId: h.patientId,
          accessionNumber: h.accessionNumber,
          studyDescription: h.studyDescription,
        });
        recovered++;
      } catch (err) {
        // Left where it is, and listed with the quarantine (once) so that `cxr status` and the log show it.
        const reason = `spool file not recoverable: ${(err as Error).message}`;
        if (!(await store.isQuarantined(path))) await store.addQuarantine(path, reason, study.name);
        logger.warn({ path, err: (err as Error).message }, "spool file not recoverable");
      }
    }
  }
  if (recovered) logger.info({ instances: recovered }, "recorded spooled instances the store had lost");
  return recovered;
}
