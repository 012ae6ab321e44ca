import type { CodedConcept } from "../model/card.ts";

/** The records the store keeps and hands out: one type per concept, shared by every role and backend. */

export type StudyState = "received" | "queued" | "processing" | "done" | "exported" | "failed" | "rejected";
export const STUDY_STATES: readonly StudyState[] = ["received", "queued", "processing", "done", "exported", "failed", "rejected"];

export interface FindingResult { label: string; code: CodedConcept; probability: number; threshold: number; positive: boolean }

export interface HistoryEntry { state: StudyState; at: string; /** the node that made the change */ node?: string }

/** The patient and study identification a study keeps from its first received header. */
export interface StudyIdentification {
  /** DICOM PN with every component group ("Yamada^Tarou=山田^太郎=やまだ^たろう"). */
  patientName?: string;
  patientId?: string;
  /** DICOM DA (YYYYMMDD) and CS (M, F, O), as received: the RIS notification's PID-7/8. */
  patientBirthDate?: string;
  patientSex?: string;
  accessionNumber?: string;
  studyDescription?: string;
}

export interface StudyRecord extends StudyIdentification {
  studyInstanceUid: string;
  state: StudyState;
  history: HistoryEntry[];
  receivedAt: string;
  updatedAt: string;
  reason?: string;
  findings?: FindingResult[];
  heatmaps?: { label: string; path: string }[];
  /** SOP Instance UIDs of the current result objects; `supersedes`: the SR these results replaced (processed again). */
  outputs?: { sr?: string; sc?: string[]; pm?: string[]; supersedes?: string };
  model?: { name: string; version: string; deviceUid: string; training: string };
  /** The node that last took the study into processing (cluster mode: several nodes share one store). */
  processedBy?: string;
  /** The notifications of the current results (RIS, FHIR, webhooks) and how far each got. */
  notifications?: NotificationRecord[];
}

/** The header attributes series selection looks at, kept per instance. */
export interface InstanceHeader {
  modality?: string;
  bodyPartExamined?: string;
  viewPosition?: string;
  patientPosition?: string;
  viewCodeMeaning?: string;
  viewCodeValue?: string;
  imageComments?: string;
  patientOrientation?: string;
  imageType?: string[];
  manufacturer?: string;
  seriesDescription?: string;
  studyDescription?: string;
  protocolName?: string;
  contributingManufacturers?: string[];
  instanceNumber?: number;
}

export interface InstanceRecord {
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  path: string;
  sha256: string;
  size: number;
  callingAeTitle: string;
  receivedAt: string;
  header: InstanceHeader;
}

export interface NewInstance extends Omit<InstanceRecord, "receivedAt">, StudyIdentification {}

/** What happened to a received instance. */
export type InstanceOutcome = "new" | "duplicate" | "replaced";

export interface SeriesDecision { seriesInstanceUid: string; eligible: boolean; reason: string }
export interface OutputRecord { sopInstanceUid: string; studyInstanceUid: string; kind: OutputKind; sopClassUid: string; path: string }
/** SR, Secondary Capture, Parametric Map. */
export type OutputKind = "sr" | "sc" | "pm";
export interface ExportRecord { outputUid: string; destination: string; sent: boolean; attempts: number; lastError?: string; sentAt?: string }
export interface QuarantineEntry { path: string; reason: string; studyInstanceUid?: string; at: string }

/** What a finished study records, in one transaction with its move to "done". */
export interface StudyResults {
  processedKey: string;
  findings: FindingResult[];
  heatmaps: { label: string; path: string }[];
  model: NonNullable<StudyRecord["model"]>;
  outputs: OutputRecord[];
  destinations: string[];
  /** The study's previous SR, which the new one replaces (its Predecessor Documents Sequence names it). */
  supersedes?: string;
  /** Notifications to send about these results (the outbox), recorded in the same transaction. */
  notifications?: NewNotification[];
}

/** A notification destination a study's results are to reach; `required`: the study is "exported" only once it is delivered. */
export interface NewNotification { destination: string; required: boolean }

/** pending: not (yet) acknowledged, retried; delivered: positively acknowledged; failed: given up (the reason is kept). */
export type NotificationState = "pending" | "delivered" | "failed";
export const NOTIFICATION_STATES: readonly NotificationState[] = ["pending", "delivered", "failed"];

/** One row of the notification outbox: one study's current results for one destination. */
export interface NotificationRecord {
  studyInstanceUid: string;
  destination: string;
  /** The processing the notification is about (StudyResults.processedKey); newer results replace it. */
  resultsKey: string;
  required: boolean;
  state: NotificationState;
  attempts: number;
  /** When the next attempt is due (epoch ms; also the end of a sender's claim). */
  nextAt: number;
  lastError?: string;
  /** What the destination acknowledged (e.g. "AA: message accepted", "201 Created"). */
  ack?: string;
  createdAt: string;
  deliveredAt?: string;
  /** The study's last received instance when the results were recorded (epoch ms): time to notification starts here. */
  lastInstanceAt: number;
}
