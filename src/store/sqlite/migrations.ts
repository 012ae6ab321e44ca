import { SHARED_SCHEMA_CHANGES, type Migration } from "../sql.ts";

/**
 * SQLite schema versions, applied in order. Version 1 is the schema of the releases before
 * schema_version existed (unchanged, IF NOT EXISTS), so their data folders open and migrate.
 */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "schema of the first release (state history and outputs as JSON columns)",
    sql: `
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY, state TEXT NOT NULL, history TEXT NOT NULL, received_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  last_instance_at INTEGER NOT NULL, reason TEXT,
  patient_name TEXT, patient_id TEXT, accession_number TEXT, study_description TEXT,
  findings TEXT, heatmaps TEXT, outputs TEXT, model TEXT, processed_key TEXT,
  next_export_at INTEGER NOT NULL DEFAULT 0, export_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state);
CREATE TABLE IF NOT EXISTS instances (
  sop_uid TEXT PRIMARY KEY, sop_class_uid TEXT NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL,
  path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, calling_ae TEXT NOT NULL, received_at TEXT NOT NULL, header TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS series_decisions (
  study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, eligible INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (study_uid, series_uid)
);
CREATE TABLE IF NOT EXISTS outputs (sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, kind TEXT NOT NULL, sop_class_uid TEXT NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outputs_study ON outputs(study_uid);
CREATE TABLE IF NOT EXISTS exports (
  output_uid TEXT NOT NULL, destination TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT, sent_at TEXT, PRIMARY KEY (output_uid, destination)
);
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, reason TEXT NOT NULL, study_uid TEXT, at TEXT NOT NULL);
`,
  },
  {
    version: 2,
    description: "state history as a table, outputs only in their table (current flag), processing and export leases, the processing node",
    sql: `
CREATE TABLE study_history (id INTEGER PRIMARY KEY AUTOINCREMENT, study_uid TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL, node TEXT);
INSERT INTO study_history (study_uid, state, at)
  SELECT s.study_uid, json_extract(h.value, '$.state'), json_extract(h.value, '$.at')
  FROM studies s, json_each(s.history) h ORDER BY s.rowid, h.key;
CREATE INDEX study_history_study ON study_history(study_uid, id);
ALTER TABLE outputs ADD COLUMN current INTEGER NOT NULL DEFAULT 0;
UPDATE outputs SET current = 1 WHERE sop_uid IN (
  SELECT json_extract(s.outputs, '$.sr') FROM studies s WHERE s.outputs IS NOT NULL
  UNION SELECT j.value FROM studies s, json_each(s.outputs, '$.sc') j WHERE s.outputs IS NOT NULL
);
ALTER TABLE studies DROP COLUMN history;
ALTER TABLE studies DROP COLUMN outputs;
ALTER TABLE studies ADD COLUMN lease_owner TEXT;
ALTER TABLE studies ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE studies ADD COLUMN processed_by TEXT;
ALTER TABLE studies ADD COLUMN export_owner TEXT;
ALTER TABLE studies ADD COLUMN export_lease_expires_at INTEGER;
CREATE INDEX instances_path ON instances(path);
`,
  },
  { version: 3, ...SHARED_SCHEMA_CHANGES.srSupersedes },
  { version: 4, ...SHARED_SCHEMA_CHANGES.notificationOutbox },
  { version: 5, ...SHARED_SCHEMA_CHANGES.patientBirthDateAndSex },
];
