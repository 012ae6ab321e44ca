import { SHARED_SCHEMA_CHANGES, type Migration } from "../sql.ts";

/** PostgreSQL schema versions, applied in order (the same tables as SQLite's newest version). */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "studies with leases, state history, instances, series decisions, outputs, exports, quarantine",
    sql: `
CREATE TABLE studies (
  study_uid TEXT PRIMARY KEY, state TEXT NOT NULL, received_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  last_instance_at BIGINT NOT NULL, reason TEXT,
  patient_name TEXT, patient_id TEXT, accession_number TEXT, study_description TEXT,
  findings TEXT, heatmaps TEXT, model TEXT, processed_key TEXT,
  next_export_at BIGINT NOT NULL DEFAULT 0, export_attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT, lease_expires_at BIGINT, processed_by TEXT,
  export_owner TEXT, export_lease_expires_at BIGINT
);
CREATE INDEX studies_state ON studies(state, updated_at);
CREATE TABLE study_history (id BIGSERIAL PRIMARY KEY, study_uid TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL, node TEXT);
CREATE INDEX study_history_study ON study_history(study_uid, id);
CREATE TABLE instances (
  sop_uid TEXT PRIMARY KEY, sop_class_uid TEXT NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL,
  path TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL, calling_ae TEXT NOT NULL, received_at TEXT NOT NULL, header TEXT NOT NULL
);
CREATE INDEX instances_study ON instances(study_uid);
CREATE INDEX instances_path ON instances(path);
CREATE TABLE series_decisions (
  study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, eligible INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (study_uid, series_uid)
);
CREATE TABLE outputs (sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, kind TEXT NOT NULL, sop_class_uid TEXT NOT NULL, path TEXT NOT NULL, current INTEGER NOT NULL DEFAULT 0);
CREATE INDEX outputs_study ON outputs(study_uid);
CREATE TABLE exports (
  output_uid TEXT NOT NULL, destination TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT, sent_at TEXT, PRIMARY KEY (output_uid, destination)
);
CREATE TABLE quarantine (id BIGSERIAL PRIMARY KEY, path TEXT NOT NULL, reason TEXT NOT NULL, study_uid TEXT, at TEXT NOT NULL);
`,
  },
  { version: 2, ...SHARED_SCHEMA_CHANGES.srSupersedes },
  { version: 3, ...SHARED_SCHEMA_CHANGES.notificationOutbox },
  { version: 4, ...SHARED_SCHEMA_CHANGES.patientBirthDateAndSex },
];
