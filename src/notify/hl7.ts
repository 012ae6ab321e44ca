import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { Hl7Message, Hl7Segment } from "@medplum/core";
import { Hl7Connection } from "@medplum/hl7";
import type { Hl7Destination } from "../config/notify.ts";
import type { Priority } from "../worklist/priority.ts";
import { CHEST_XRAY_STUDY_CODE, personNameComponents, PRIORITIZATION_STATEMENT, type TriageReport } from "./report.ts";
import { isValidDicomDate } from "../dicom/date.ts";
import type { DeliveryOutcome } from "./outcome.ts";

/**
 * HL7 v2.5.1 ORU^R01 over MLLP (profile in the README, "Notifications"). Messages are built and
 * framed by @medplum/core / @medplum/hl7; this module only decides what goes in which field and
 * what an acknowledgement means.
 */

/** HL7 priority (TQ1-9, table 0485; OBR-27.6) of a worklist priority. */
export const HL7_PRIORITY: Record<Priority, { code: string; text: string }> = {
  urgent: { code: "S", text: "Stat" },
  review: { code: "A", text: "ASAP" },
  routine: { code: "R", text: "Routine" },
};

/** Escapes the delimiters of a value (HL7 v2 section 2.7.4) so that text never changes the structure. */
export function hl7Escape(value: string): string {
  return value.replace(/\\/g, "\\E\\").replace(/\|/g, "\\F\\").replace(/\^/g, "\\S\\").replace(/&/g, "\\T\\").replace(/~/g, "\\R\\").replace(/\r\n|\r|\n/g, "\\.br\\");
}

/** Components joined by ^, each escaped. */
const comp = (...parts: (string | undefined)[]) => parts.map((p) => hl7Escape(p ?? "")).join("^").replace(/\^+$/, "");

/** DICOM PN (Family^Given^Middle^Prefix^Suffix, alphabetic group) → HL7 XPN (Family^Given^Middle^Suffix^Prefix). */
export function xpnFromDicomName(pn: string): string {
  const { family, given, middle, prefix, suffix } = personNameComponents(pn);
  return comp(family, given, middle, suffix, prefix);
}

/** YYYYMMDDHHMMSS+0000 (UTC). */
export function hl7Timestamp(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "+0000";
}

/** MSH-10: unique per message, derived from the study, its results and the attempt (a retry is a new message). */
export function messageControlId(report: TriageReport, resultsKey: string, attempt: number): string {
  return `${createHash("sha256").update(`${report.studyInstanceUid}|${resultsKey}`).digest("hex").slice(0, 16)}-${attempt}`;
}

const segment = (fields: string[]) => new Hl7Segment(fields);

/** The ORU^R01 of a study's triage results. */
export function buildOru(report: TriageReport, dest: Hl7Destination, opts: { controlId: string; now: Date; commitOnly?: boolean }): Hl7Message {
  const prio = HL7_PRIORITY[report.priority.priority];
  const accession = report.accessionNumber ? hl7Escape(report.accessionNumber) : "";
  const serviceId = comp(CHEST_XRAY_STUDY_CODE.code, CHEST_XRAY_STUDY_CODE.display, "LN");
  const observed = hl7Timestamp(new Date(report.resultsAt));
  const segments = [
    segment([
      "MSH", "^~\\&", hl7Escape(dest.sendingApplication), hl7Escape(dest.sendingFacility), hl7Escape(dest.receivingApplication), hl7Escape(dest.receivingFacility),
      hl7Timestamp(opts.now), "", "ORU^R01^ORU_R01", opts.controlId, dest.processingId, "2.5.1", "", "",
      // Commit acknowledgement always; application acknowledgement unless the receiver only commits.
      "AL", opts.commitOnly ? "NE" : "AL", "", "UNICODE UTF-8",
    ]),
    segment([
      "PID", "1", "", report.patientId ? `${hl7Escape(report.patientId)}^^^^PI` : "", "", report.patientName ? xpnFromDicomName(report.patientName) : "",
      "", hl7BirthDate(report.patientBirthDate), hl7Sex(report.patientSex),
    ]),
    segment(["ORC", "RE", accession, accession, "", "CM", "", "", "", hl7Timestamp(opts.now)]),
    segment([
      "OBR", "1", accession, accession, serviceId, "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", observed, "", "", "P",
      "", `^^^^^${prio.code}`,
    ]),
    segment(["NTE", "1", "L", hl7Escape(`${PRIORITIZATION_STATEMENT}. Triage priority ${report.priority.priority}: ${report.priority.reason}`)]),
    segment(["TQ1", "1", "", "", "", "", "", "", "", comp(prio.code, prio.text, "HL70485")]),
  ];
  const model = `${report.model.name} ${report.model.version}`;
  report.findings.forEach((f, i) => {
    segments.push(segment([
      "OBX", String(i + 1), "NM", comp(f.code.value, f.code.meaning, f.code.scheme /* DICOM's designators SCT and DCM are HL7 table 0396 names too */), "", f.probability.toFixed(4), "1^^UCUM",
      `0-${f.threshold.toFixed(4)}`, f.positive ? "A" : "N", "", "", "P", "", "", observed, "", "", "", `${hl7Escape(model)}^^${hl7Escape(report.model.deviceUid)}^ISO`,
    ]));
  });
  segments.push(segment([
    "OBX", String(report.findings.length + 1), "ST", comp("110180", "Study Instance UID", "DCM"), "", hl7Escape(report.studyInstanceUid), "", "", "", "", "", "P",
  ]));
  return new Hl7Message(segments);
}

/** What an acknowledgement means for delivery: AA (and CA when only a commit is asked for) deliver; AE/AR as configured. */
export function judgeAck(ack: Hl7Message, dest: Hl7Destination, commitOnly: boolean): DeliveryOutcome {
  // Absent fields are undefined in @medplum/core (a short segment ends early).
  const field = (name: string, i: number) => ack.get(name)?.getField(i)?.toString() ?? "";
  const code = field("MSA", 1);
  const text = [field("MSA", 3), field("ERR", 8)].filter(Boolean).join(" ");
  const detail = `${code}${text ? `: ${text}` : ""}`;
  if (code === "AA" || (commitOnly && code === "CA")) return { delivered: true, ack: detail };
  if (code === "AE" || code === "CE") return { delivered: false, error: `application error ${detail}`, retry: dest.onApplicationError === "retry" };
  if (code === "AR" || code === "CR") return { delivered: false, error: `rejected ${detail}`, retry: dest.onApplicationReject === "retry" };
  return { delivered: false, error: `unexpected acknowledgement "${detail || ack.toString().slice(0, 80)}"`, retry: true };
}

function connectSocket(dest: Hl7Destination, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const t = dest.tls;
    const socket = t
      ? tls.connect({
          host: dest.host, port: dest.port, servername: t.servername ?? dest.host,
          ca: t.ca ? readFileSync(t.ca) : undefined, cert: t.cert ? readFileSync(t.cert) : undefined, key: t.key ? readFileSync(t.key) : undefined,
        })
      : net.connect({ host: dest.host, port: dest.port });
    socket.setTimeout(timeoutMs, () => onError(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once("error", onError);
    socket.once(t ? "secureConnect" : "connect", () => {
      socket.setTimeout(0);
      socket.off("error", onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Sends one ORU and waits for its acknowledgement (the application one, unless the receiver only commits). */
export async function sendOru(report: TriageReport, dest: Hl7Destination, opts: { resultsKey: string; attempt: number; timeoutMs: number; now?: Date }): Promise<DeliveryOutcome> {
  const commitOnly = dest.acknowledgement === "commit";
  const msg = buildOru(report, dest, { controlId: messageControlId(report, opts.resultsKey, opts.attempt), now: opts.now ?? new Date(), commitOnly });
  let socket: net.Socket;
  try {
    socket = await connectSocket(dest, opts.timeoutMs);
  } catch (err) {
    return { delivered: false, error: `${dest.host}:${dest.port}: ${(err as Error).message}`, retry: true };
  }
  const conn = new Hl7Connection(socket, "utf-8");
  conn.addEventListener("error", () => undefined); // reported through sendAndWait's rejection
  try {
    const ack = await conn.sendAndWait(msg, { timeoutMs: opts.timeoutMs, returnAck: commitOnly ? "first" : "application" });
    return judgeAck(ack, dest, commitOnly);
  } catch (err) {
    return { delivered: false, error: `${dest.host}:${dest.port}: no acknowledgement (${errorText(err)})`, retry: true };
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function errorText(err: unknown): string {
  const outcome = (err as { outcome?: { issue?: { details?: { text?: string } }[] } }).outcome;
  return outcome?.issue?.[0]?.details?.text ?? (err as Error).message ?? String(err);
}

/** PID-7 (DTM): a DICOM DA that is a real date (YYYYMMDD) passes as it is; anything else is left empty, not guessed. */
export function hl7BirthDate(da: string | undefined): string {
  return da && isValidDicomDate(da) ? da : "";
}

/** PID-8 (HL7 table 0001): DICOM's M, F, O map to M, F, O; an absent or other value is U (unknown). */
export function hl7Sex(cs: string | undefined): string {
  return cs === "M" || cs === "F" || cs === "O" ? cs : "U";
}
