import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { NIH_LABELS } from "../model/labels.ts";
import { readDicom } from "../dicom/read.ts";

/**
 * Labelled image tables in the seed's CSV format: `Image`, the label columns (0/1), `PatientId`,
 * optionally `Split`. For DICOM folders the key column may instead be `SOPInstanceUID` or
 * `AccessionNumber`, matched against the headers of the files under the images folder.
 */
export type KeyColumn = "Image" | "SOPInstanceUID" | "AccessionNumber";

export interface LabeledRow {
  /** 1-based line number in the CSV (header = line 1), for error messages. */
  line: number;
  /** Value of the key column: an image file name, a SOP Instance UID or an accession number. */
  key: string;
  patientId: string;
  split?: string;
  /** 0/1 per label, in `LabelTable.labelNames` order. */
  labels: number[];
}

export interface LabelTable {
  source: string;
  keyColumn: KeyColumn;
  labelNames: string[];
  hasSplit: boolean;
  header: string[];
  /** The raw cells of every row, so tools (split) can rewrite the CSV without losing columns. */
  cells: string[][];
  rows: LabeledRow[];
}

export class DatasetError extends Error {}

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(header: string[], rows: (string | number)[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}

const PATIENT_COLUMNS = ["PatientId", "PatientID", "Patient ID"];
const KEY_COLUMNS: KeyColumn[] = ["Image", "SOPInstanceUID", "AccessionNumber"];

export function readLabelTable(csvPath: string, labelNames: readonly string[] = NIH_LABELS): LabelTable {
  let text: string;
  try {
    text = readFileSync(csvPath, "utf8");
  } catch (err) {
    throw new DatasetError(`${csvPath}: cannot read labels CSV (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  // Spreadsheet programs save "CSV UTF-8" with a byte order mark, which would become part of the first column's name.
  const [header, ...body] = parseCsv(text.replace(/^\uFEFF/, ""));
  if (!header) throw new DatasetError(`${csvPath}: empty labels CSV`);
  const col = (name: string) => header.indexOf(name);
  const keyColumn = KEY_COLUMNS.find((k) => col(k) >= 0);
  if (!keyColumn) throw new DatasetError(`${csvPath}: no key column (one of ${KEY_COLUMNS.join(", ")})`);
  const patientCol = PATIENT_COLUMNS.map(col).find((i) => i >= 0);
  if (patientCol === undefined) throw new DatasetError(`${csvPath}: no patient column (one of ${PATIENT_COLUMNS.join(", ")})`);
  const missing = labelNames.filter((l) => col(l) < 0);
  if (missing.length) throw new DatasetError(`${csvPath}: label columns missing: ${missing.join(", ")}`);
  const labelCols = labelNames.map(col);
  const keyCol = col(keyColumn);
  const splitCol = col("Split");
  const rows: LabeledRow[] = body.map((cells, i) => {
    const line = i + 2;
    if (cells.length !== header.length) throw new DatasetError(`${csvPath}:${line}: ${cells.length} fields, header has ${header.length}`);
    const labels = labelCols.map((c, j) => {
      const v = cells[c]!.trim();
      if (v !== "0" && v !== "1") throw new DatasetError(`${csvPath}:${line}: ${labelNames[j]} is "${v}", expected 0 or 1`);
      return Number(v);
    });
    const key = cells[keyCol]!.trim();
    if (!key) throw new DatasetError(`${csvPath}:${line}: empty ${keyColumn}`);
    const row: LabeledRow = { line, key, patientId: cells[patientCol]!.trim(), labels };
    if (splitCol >= 0) row.split = cells[splitCol]!.trim();
    return row;
  });
  return { source: csvPath, keyColumn, labelNames: [...labelNames], hasSplit: splitCol >= 0, header, cells: body, rows };
}

/** Rows of one split; without a `Split` column every row belongs to every split request of `undefined`. */
export function selectSplit(table: LabelTable, split: string | undefined): LabeledRow[] {
  if (split === undefined) return table.rows;
  if (!table.hasSplit) throw new DatasetError(`${table.source}: --split ${split} given but the CSV has no Split column`);
  return table.rows.filter((r) => r.split === split);
}

export interface ResolvedRow extends LabeledRow {
  path: string;
}
export interface Unresolved {
  row: LabeledRow;
  reason: string;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/**
 * Pairs rows with image files. `Image` keys are file names under `imagesDir`; UID/accession keys are
 * matched against the DICOM headers of every file under it. Rows without a file are returned with
 * the reason, never silently dropped.
 */
export function resolveImages(table: LabelTable, rows: LabeledRow[], imagesDir: string): { resolved: ResolvedRow[]; unresolved: Unresolved[] } {
  if (!existsSync(imagesDir)) throw new DatasetError(`${imagesDir}: images folder does not exist`);
  const resolved: ResolvedRow[] = [];
  const unresolved: Unresolved[] = [];
  if (table.keyColumn === "Image") {
    for (const row of rows) {
      const path = join(imagesDir, row.key);
      if (existsSync(path)) resolved.push({ ...row, path });
      else unresolved.push({ row, reason: `no file ${path}` });
    }
    return { resolved, unresolved };
  }
  const index = new Map<string, string>();
  const field = table.keyColumn;
  for (const path of walk(imagesDir).sort()) {
    let value: unknown;
    try {
      value = readDicom(path, { withPixelData: false }).dataset[field];
    } catch {
      continue; // not DICOM: the folder may hold other files; rows that needed it are reported below
    }
    if (typeof value === "string" && value && !index.has(value)) index.set(value, path);
  }
  for (const row of rows) {
    const path = index.get(row.key);
    if (path) resolved.push({ ...row, path });
    else unresolved.push({ row, reason: `no DICOM file under ${imagesDir} with ${field} ${row.key}` });
  }
  return { resolved, unresolved };
}
