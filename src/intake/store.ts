import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { CodedConcept } from "../model/card.ts";

/**
 * The durable store of the service (SQLite in WAL mode, better-sqlite3): studies with their state
 * history, received instances, series decisions, result objects and their exports. Every write is
 * a committed transaction before the caller goes on, so what the listener has answered "success"
 * for survives a SIGKILL, and the pipeline resumes from what is recorded. Commits are not fsynced
 * (synchronous=NORMAL): after a power loss the last ones can be missing; the spool files are
 * fsynced and recoverSpool() records them again, and every later stage is idempotent.
 */

export type StudyState = "received" | "queued" | "processing" | "done" | "exported" | "failed" | "rejected";
export const STUDY_STATES: readonly StudyState[] = ["received", "queued", "processing", "done", "exported", "failed", "rejected"];

export interface FindingResult { label: string; code: CodedConcept; probability: number; threshold: number; positive: boolean }

export interface StudyRecord {
  studyInstanceUid: string;
  state: StudyState;
  history: { state: StudyState; at: string }[];
  receivedAt: string;
  updatedAt: string;
  reason?: string;
  patientName?: string;
  patientId?: string;
  accessionNumber?: string;
  studyDescription?: string;
  findings?: FindingResult[];
  heatmaps?: { label: string; path: string }[];
  outputs?: { sr?: string; sc?: string[]; pm?: string[] };
  model?: { name: string; version: string; deviceUid: string; training: string };
}

export interface StudyStore {
  list(): StudyRecord[];
  get(studyInstanceUid: string): StudyRecord | undefined;
  /** Called after every change of a study (new, state change, results). */
  onChange(listener: (rec: StudyRecord) => void): () => void;
  /** Studies per state (health checks and metrics ask for it often: no study records are built). */
  countsByState(): Record<StudyState, number>;
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

export interface NewInstance extends Omit<InstanceRecord, "receivedAt"> {
  patientName?: string;
  patientId?: string;
  accessionNumber?: string;
  studyDescription?: string;
}

export interface SeriesDecision { seriesInstanceUid: string; eligible: boolean; reason: string }
export interface OutputRecord { sopInstanceUid: string; studyInstanceUid: string; kind: OutputKind; sopClassUid: string; path: string }
/** SR, Secondary Capture, Parametric Map. */
export type OutputKind = "sr" | "sc" | "pm";
export interface ExportRecord { outputUid: string; destination: string; sent: boolean; attempts: number; lastError?: string; sentAt?: string }

/** What happened to a received instance. */
export type InstanceOutcome = "new" | "duplicate" | "replaced";

interface StudyRow {
  study_uid: string;
  state: StudyState;
  history: string;
  received_at: string;
  updated_at: string;
  last_instance_at: number;
  reason: string | null;
  patient_name: string | null;
  patient_id: string | null;
  accession_number: string | null;
  study_description: string | null;
  findings: string | null;
  heatmaps: string | null;
  outputs: string | null;
  model: string | null;
  processed_key: string | null;
  next_export_at: number;
  export_attempts: number;
}

interface InstanceRow {
  sop_uid: string;
  sop_class_uid: string;
  study_uid: string;
  series_uid: string;
  transfer_syntax_uid: string;
  path: string;
  sha256: string;
  size: number;
  calling_ae: string;
  received_at: string;
  header: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  history TEXT NOT NULL,
  received_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_instance_at INTEGER NOT NULL,
  reason TEXT,
  patient_name TEXT, patient_id TEXT, accession_number TEXT, study_description TEXT,
  findings TEXT, heatmaps TEXT, outputs TEXT, model TEXT,
  processed_key TEXT,
  next_export_at INTEGER NOT NULL DEFAULT 0,
  export_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state);
CREATE TABLE IF NOT EXISTS instances (
  sop_uid TEXT PRIMARY KEY,
  sop_class_uid TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  series_uid TEXT NOT NULL,
  transfer_syntax_uid TEXT NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  calling_ae TEXT NOT NULL,
  received_at TEXT NOT NULL,
  header TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS series_decisions (
  study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, eligible INTEGER NOT NULL, reason TEXT NOT NULL,
  PRIMARY KEY (study_uid, series_uid)
);
CREATE TABLE IF NOT EXISTS outputs (
  sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, kind TEXT NOT NULL, sop_class_uid TEXT NOT NULL, path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outputs_study ON outputs(study_uid);
CREATE TABLE IF NOT EXISTS exports (
  output_uid TEXT NOT NULL, destination TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at TEXT,
  PRIMARY KEY (output_uid, destination)
);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, reason TEXT NOT NULL, study_uid TEXT, at TEXT NOT NULL
);
`;

const parse = <T>(s: string | null): T | undefined => (s === null ? undefined : (JSON.parse(s) as T));

export class SqliteStudyStore implements StudyStore {
  readonly db: Database.Database;
  private readonly listeners = new Set<(rec: StudyRecord) => void>();
  private readonly statements = new Map<string, Database.Statement>();

  /** `onListenerError`: where a failing onChange listener is reported (it never breaks the write that emitted). */
  constructor(
    readonly path: string,
    private readonly onListenerError?: (err: Error, studyUid: string) => void,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  /**
   * The prepared statement for `sql`, prepared once: preparing costs about as much as running these
   * small statements, and addInstance runs on the way to every C-STORE answer.
   */
  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  onChange(listener: (rec: StudyRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(studyUid: string): void {
    if (this.listeners.size === 0) return;
    const rec = this.get(studyUid);
    if (!rec) return;
    for (const l of this.listeners) {
      try {
        l(rec);
      } catch (err) {
        // A listener's failure must not break intake; it is reported, not swallowed.
        this.onListenerError?.(err as Error, studyUid);
      }
    }
  }

  list(): StudyRecord[] {
    return (this.statement("SELECT * FROM studies ORDER BY received_at DESC").all() as StudyRow[]).map(toRecord);
  }

  get(studyInstanceUid: string): StudyRecord | undefined {
    const row = this.statement("SELECT * FROM studies WHERE study_uid = ?").get(studyInstanceUid) as StudyRow | undefined;
    return row && toRecord(row);
  }

  /** Studies per state, for `cxr status` and metrics. */
  countsByState(): Record<StudyState, number> {
    const counts = Object.fromEntries(STUDY_STATES.map((s) => [s, 0])) as Record<StudyState, number>;
    for (const r of this.statement("SELECT state, COUNT(*) AS n FROM studies GROUP BY state").all() as { state: StudyState; n: number }[]) counts[r.state] = r.n;
    return counts;
  }

  /**
   * Records a received instance (its file is already fsynced). A new instance of a study that was
   * finished re-opens it; an identical copy (same SOP Instance UID and bytes) changes nothing.
   */
  addInstance(inst: NewInstance, now = new Date()): InstanceOutcome {
    const at = now.toISOString();
    let outcome = "new" as InstanceOutcome;
    this.db.transaction(() => {
      const prev = this.statement("SELECT sha256, study_uid FROM instances WHERE sop_uid = ?").get(inst.sopInstanceUid) as { sha256: string; study_uid: string } | undefined;
      if (prev && prev.sha256 === inst.sha256) {
        outcome = "duplicate";
        return;
      }
      outcome = prev ? "replaced" : "new";
      this.db
        .prepare(
          `INSERT INTO instances (sop_uid, sop_class_uid, study_uid, series_uid, transfer_syntax_uid, path, sha256, size, calling_ae, received_at, header)
           VALUES (@sop, @cls, @study, @series, @ts, @path, @sha, @size, @ae, @at, @header)
           ON CONFLICT(sop_uid) DO UPDATE SET sop_class_uid=@cls, study_uid=@study, series_uid=@series, transfer_syntax_uid=@ts,
             path=@path, sha256=@sha, size=@size, calling_ae=@ae, received_at=@at, header=@header`,
        )
        .run({
          sop: inst.sopInstanceUid, cls: inst.sopClassUid, study: inst.studyInstanceUid, series: inst.seriesInstanceUid,
          ts: inst.transferSyntaxUid, path: inst.path, sha: inst.sha256, size: inst.size, ae: inst.callingAeTitle, at, header: JSON.stringify(inst.header),
        });
      const study = this.statement("SELECT state, history FROM studies WHERE study_uid = ?").get(inst.studyInstanceUid) as { state: StudyState; history: string } | undefined;
      if (!study) {
        this.db
          .prepare(
            `INSERT INTO studies (study_uid, state, history, received_at, updated_at, last_instance_at, patient_name, patient_id, accession_number, study_description)
             VALUES (?, 'received', ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(inst.studyInstanceUid, JSON.stringify([{ state: "received", at }]), at, at, now.getTime(), inst.patientName ?? null, inst.patientId ?? null, inst.accessionNumber ?? null, inst.studyDescription ?? null);
      } else {
        // More images: the study is assembled again (and, if its content changed, processed again).
        const history = JSON.parse(study.history) as { state: StudyState; at: string }[];
        const reopen = study.state !== "received" && study.state !== "queued" && study.state !== "processing";
        if (reopen) history.push({ state: "received", at });
        this.db
          .prepare(`UPDATE studies SET last_instance_at = ?, updated_at = ?, state = CASE WHEN ? THEN 'received' ELSE state END, reason = CASE WHEN ? THEN NULL ELSE reason END, history = ? WHERE study_uid = ?`)
          .run(now.getTime(), at, reopen ? 1 : 0, reopen ? 1 : 0, JSON.stringify(history), inst.studyInstanceUid);
      }
    })();
    if (outcome !== "duplicate") this.emit(inst.studyInstanceUid);
    return outcome;
  }

  instances(studyUid: string): InstanceRecord[] {
    return (this.statement("SELECT * FROM instances WHERE study_uid = ? ORDER BY received_at, sop_uid").all(studyUid) as InstanceRow[]).map((r) => ({
      sopInstanceUid: r.sop_uid, sopClassUid: r.sop_class_uid, studyInstanceUid: r.study_uid, seriesInstanceUid: r.series_uid,
      transferSyntaxUid: r.transfer_syntax_uid, path: r.path, sha256: r.sha256, size: r.size, callingAeTitle: r.calling_ae,
      receivedAt: r.received_at, header: JSON.parse(r.header) as InstanceHeader,
    }));
  }

  instanceCount(studyUid: string): number {
    return (this.statement("SELECT COUNT(*) AS n FROM instances WHERE study_uid = ?").get(studyUid) as { n: number }).n;
  }

  /** Studies in "received" whose newest instance is older than `stableBefore` (epoch ms). */
  stableStudies(stableBefore: number): string[] {
    return (this.statement("SELECT study_uid FROM studies WHERE state = 'received' AND last_instance_at <= ? ORDER BY last_instance_at").all(stableBefore) as { study_uid: string }[]).map((r) => r.study_uid);
  }

  studiesInState(state: StudyState): string[] {
    return (this.statement("SELECT study_uid FROM studies WHERE state = ? ORDER BY updated_at").all(state) as { study_uid: string }[]).map((r) => r.study_uid);
  }

  /**
   * Moves a study to `state` (appending to its history) when it is in one of `from` (if given);
   * returns false when it was not. The compare-and-set is what lets several workers claim studies.
   */
  transition(studyUid: string, state: StudyState, opts: { from?: StudyState[]; reason?: string | null; now?: Date } = {}): boolean {
    const at = (opts.now ?? new Date()).toISOString();
    const changed = this.db.transaction(() => {
      const row = this.statement("SELECT state, history FROM studies WHERE study_uid = ?").get(studyUid) as { state: StudyState; history: string } | undefined;
      if (!row) return false;
      if (opts.from && !opts.from.includes(row.state)) return false;
      const history = JSON.parse(row.history) as { state: StudyState; at: string }[];
      history.push({ state, at });
      this.db
        .prepare("UPDATE studies SET state = ?, history = ?, updated_at = ?, reason = CASE WHEN ? THEN ? ELSE reason END WHERE study_uid = ?")
        .run(state, JSON.stringify(history), at, opts.reason !== undefined ? 1 : 0, opts.reason ?? null, studyUid);
      return true;
    })();
    if (changed) this.emit(studyUid);
    return changed;
  }

  setSeriesDecisions(studyUid: string, decisions: SeriesDecision[]): void {
    this.db.transaction(() => {
      this.statement("DELETE FROM series_decisions WHERE study_uid = ?").run(studyUid);
      const ins = this.statement("INSERT INTO series_decisions (study_uid, series_uid, eligible, reason) VALUES (?, ?, ?, ?)");
      for (const d of decisions) ins.run(studyUid, d.seriesInstanceUid, d.eligible ? 1 : 0, d.reason);
    })();
  }

  seriesDecisions(studyUid: string): SeriesDecision[] {
    return (this.statement("SELECT series_uid, eligible, reason FROM series_decisions WHERE study_uid = ? ORDER BY series_uid").all(studyUid) as { series_uid: string; eligible: number; reason: string }[]).map((r) => ({
      seriesInstanceUid: r.series_uid, eligible: r.eligible === 1, reason: r.reason,
    }));
  }

  /** The key of the last successful processing (inputs + model); equal key = nothing new to do. */
  processedKey(studyUid: string): string | undefined {
    const r = this.statement("SELECT processed_key FROM studies WHERE study_uid = ?").get(studyUid) as { processed_key: string | null } | undefined;
    return r?.processed_key ?? undefined;
  }

  /**
   * Records the results of a study and the exports they need, and moves it to "done", in one
   * transaction: after a crash either all of it is there or none (and the study is processed again).
   */
  recordResults(
    studyUid: string,
    results: {
      processedKey: string;
      findings: FindingResult[];
      heatmaps: { label: string; path: string }[];
      model: NonNullable<StudyRecord["model"]>;
      outputs: OutputRecord[];
      destinations: string[];
    },
    now = new Date(),
  ): void {
    const at = now.toISOString();
    this.db.transaction(() => {
      const row = this.statement("SELECT history FROM studies WHERE study_uid = ?").get(studyUid) as { history: string };
      const history = JSON.parse(row.history) as { state: StudyState; at: string }[];
      history.push({ state: "done", at });
      const sr = results.outputs.find((o) => o.kind === "sr")?.sopInstanceUid;
      const sc = results.outputs.filter((o) => o.kind === "sc").map((o) => o.sopInstanceUid);
      const pm = results.outputs.filter((o) => o.kind === "pm").map((o) => o.sopInstanceUid);
      this.db
        .prepare(
          `UPDATE studies SET state = 'done', history = ?, updated_at = ?, reason = NULL, findings = ?, heatmaps = ?, outputs = ?, model = ?,
             processed_key = ?, next_export_at = 0, export_attempts = 0 WHERE study_uid = ?`,
        )
        .run(JSON.stringify(history), at, JSON.stringify(results.findings), JSON.stringify(results.heatmaps), JSON.stringify({ sr, sc, ...(pm.length ? { pm } : {}) }), JSON.stringify(results.model), results.processedKey, studyUid);
      const insOut = this.statement("INSERT OR REPLACE INTO outputs (sop_uid, study_uid, kind, sop_class_uid, path) VALUES (?, ?, ?, ?, ?)");
      const insExp = this.statement("INSERT OR IGNORE INTO exports (output_uid, destination) VALUES (?, ?)");
      for (const o of results.outputs) {
        insOut.run(o.sopInstanceUid, studyUid, o.kind, o.sopClassUid, o.path);
        for (const d of results.destinations) insExp.run(o.sopInstanceUid, d);
      }
    })();
    this.emit(studyUid);
  }

  outputs(studyUid: string): OutputRecord[] {
    const srFirst = "CASE kind WHEN 'sr' THEN 0 ELSE 1 END";
    return (this.statement(`SELECT * FROM outputs WHERE study_uid = ? ORDER BY ${srFirst}, sop_uid`).all(studyUid) as { sop_uid: string; study_uid: string; kind: OutputKind; sop_class_uid: string; path: string }[]).map((r) => ({
      sopInstanceUid: r.sop_uid, studyInstanceUid: r.study_uid, kind: r.kind, sopClassUid: r.sop_class_uid, path: r.path,
    }));
  }

  /** The current outputs of a study with their export state towards `destination`. */
  pendingExports(studyUid: string, destination: string): OutputRecord[] {
    const rec = this.get(studyUid);
    const current = new Set([rec?.outputs?.sr, ...(rec?.outputs?.sc ?? []), ...(rec?.outputs?.pm ?? [])].filter((u): u is string => !!u));
    return this.outputs(studyUid).filter((o) => {
      if (!current.has(o.sopInstanceUid)) return false;
      const e = this.statement("SELECT sent FROM exports WHERE output_uid = ? AND destination = ?").get(o.sopInstanceUid, destination) as { sent: number } | undefined;
      return !e || e.sent === 0;
    });
  }

  markExported(outputUid: string, destination: string, now = new Date()): void {
    this.db
      .prepare("INSERT INTO exports (output_uid, destination, sent, attempts, sent_at) VALUES (?, ?, 1, 1, ?) ON CONFLICT DO UPDATE SET sent = 1, attempts = attempts + 1, sent_at = excluded.sent_at, last_error = NULL")
      .run(outputUid, destination, now.toISOString());
  }

  markExportFailed(outputUid: string, destination: string, error: string): void {
    this.db
      .prepare("INSERT INTO exports (output_uid, destination, attempts, last_error) VALUES (?, ?, 1, ?) ON CONFLICT DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error")
      .run(outputUid, destination, error);
  }

  exports(studyUid: string): ExportRecord[] {
    return (
      this.statement("SELECT e.* FROM exports e JOIN outputs o ON o.sop_uid = e.output_uid WHERE o.study_uid = ? ORDER BY e.destination, e.output_uid").all(studyUid) as {
        output_uid: string; destination: string; sent: number; attempts: number; last_error: string | null; sent_at: string | null;
      }[]
    ).map((r) => ({ outputUid: r.output_uid, destination: r.destination, sent: r.sent === 1, attempts: r.attempts, lastError: r.last_error ?? undefined, sentAt: r.sent_at ?? undefined }));
  }

  /** Export scheduling of a "done" study: when the next attempt is due, and how many failed so far. */
  exportSchedule(studyUid: string): { nextAt: number; attempts: number } {
    const r = this.statement("SELECT next_export_at, export_attempts FROM studies WHERE study_uid = ?").get(studyUid) as { next_export_at: number; export_attempts: number };
    return { nextAt: r.next_export_at, attempts: r.export_attempts };
  }

  setExportSchedule(studyUid: string, nextAt: number, attempts: number, lastError?: string): void {
    this.statement("UPDATE studies SET next_export_at = ?, export_attempts = ?, reason = ? WHERE study_uid = ?").run(nextAt, attempts, lastError ?? null, studyUid);
    this.emit(studyUid);
  }

  addQuarantine(path: string, reason: string, studyUid?: string, now = new Date()): void {
    this.statement("INSERT INTO quarantine (path, reason, study_uid, at) VALUES (?, ?, ?, ?)").run(path, reason, studyUid ?? null, now.toISOString());
  }

  quarantined(): { path: string; reason: string; studyInstanceUid?: string; at: string }[] {
    return (this.statement("SELECT * FROM quarantine ORDER BY id").all() as { path: string; reason: string; study_uid: string | null; at: string }[]).map((r) => ({
      path: r.path, reason: r.reason, studyInstanceUid: r.study_uid ?? undefined, at: r.at,
    }));
  }

  /** After a restart: studies a dead process was working on go back to the queue. */
  requeueInterrupted(now = new Date()): string[] {
    const ids = this.studiesInState("processing");
    for (const id of ids) this.transition(id, "queued", { from: ["processing"], now });
    return ids;
  }
}

function toRecord(r: StudyRow): StudyRecord {
  const rec: StudyRecord = {
    studyInstanceUid: r.study_uid,
    state: r.state,
    history: JSON.parse(r.history) as StudyRecord["history"],
    receivedAt: r.received_at,
    updatedAt: r.updated_at,
  };
  if (r.reason !== null) rec.reason = r.reason;
  if (r.patient_name !== null) rec.patientName = r.patient_name;
  if (r.patient_id !== null) rec.patientId = r.patient_id;
  if (r.accession_number !== null) rec.accessionNumber = r.accession_number;
  if (r.study_description !== null) rec.studyDescription = r.study_description;
  const findings = parse<FindingResult[]>(r.findings);
  if (findings) rec.findings = findings;
  const heatmaps = parse<{ label: string; path: string }[]>(r.heatmaps);
  if (heatmaps) rec.heatmaps = heatmaps;
  const outputs = parse<NonNullable<StudyRecord["outputs"]>>(r.outputs);
  if (outputs) rec.outputs = outputs;
  const model = parse<NonNullable<StudyRecord["model"]>>(r.model);
  if (model) rec.model = model;
  return rec;
}
