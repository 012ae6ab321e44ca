import { pino } from "pino";
import { resolveConfig, type ServiceConfig } from "../../src/config/service.ts";
import { findingCode, NIH_LABELS } from "../../src/model/labels.ts";
import { Notifier, notificationsFor } from "../../src/notify/notifier.ts";
import type { Store } from "../../src/store/index.ts";
import type { FindingResult } from "../../src/store/types.ts";

export const STUDY = "1.2.826.0.1.3680043.10.77.16.1";
/** ISO_IR 192 names as the listener stores them (decoded to Unicode). */
export const PATIENT = { name: "Müller-Łukasz^Jörg Ñandú^^Dr.^", id: "PID-ÅÄ-7|x", birthDate: "19470312", sex: "F" };
export const ACCESSION = "ACC16&01";

/** The 14 NIH findings with the SR's codes; Pneumothorax (urgent by default) at 0.91 ≥ 0.42, the rest low. */
export function findings(pneumothorax = 0.91): FindingResult[] {
  return NIH_LABELS.map((label, i) => {
    const probability = label === "Pneumothorax" ? pneumothorax : 0.01 * (i + 1);
    return { label, code: findingCode(label), probability, threshold: label === "Pneumothorax" ? 0.42 : 0.5, positive: probability >= (label === "Pneumothorax" ? 0.42 : 0.5) };
  });
}

export function config(notify: unknown): ServiceConfig {
  return resolveConfig({ notify });
}

/** A study through intake and processing to results (and its outbox rows), as the pipeline records them. */
export async function studyWithResults(store: Store, cfg: ServiceConfig, opts: { study?: string; key?: string; pneumothorax?: number; sop?: number; anonymous?: boolean } = {}): Promise<string> {
  const study = opts.study ?? STUDY;
  const sop = opts.sop ?? 1;
  await store.addInstance({
    sopInstanceUid: `${study}.1.${sop}`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1.1", studyInstanceUid: study, seriesInstanceUid: `${study}.1`,
    transferSyntaxUid: "1.2.840.10008.1.2.1", path: `/spool/${study}/${sop}.dcm`, sha256: `sha-${sop}`, size: 1, callingAeTitle: "MODALITY",
    header: { modality: "DX" }, ...(!opts.anonymous && { patientName: PATIENT.name, patientId: PATIENT.id, patientBirthDate: PATIENT.birthDate, patientSex: PATIENT.sex, accessionNumber: ACCESSION }),
  });
  if (!(await store.transition(study, "queued", { from: ["received"] }))) throw new Error("not queued");
  if ((await store.claimNext()) !== study) throw new Error("not claimed");
  const f = findings(opts.pneumothorax);
  await store.recordResults(study, {
    processedKey: opts.key ?? "key-1", findings: f, heatmaps: [], outputs: [], destinations: [],
    model: { name: "cxr-densenet121", version: "1.0.0", deviceUid: "2.25.123456789", training: "untrained trunk" },
    notifications: notificationsFor(f, cfg),
  });
  return study;
}

export function notifier(store: Store, cfg: ServiceConfig, onDelivered?: (uid: string) => void): Notifier {
  return new Notifier({ store, config: cfg, logger: pino({ level: "silent" }), onDelivered });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
