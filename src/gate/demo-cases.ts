import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dcmjs } from "../dicom/dcmjs.ts";
import { deriveUid } from "../dicom/uid.ts";

/**
 * Inputs the image-content gate must stop, made from the shared files for `cxr demo`: the NEMA RG2
 * hip CR with a header claiming a chest PA, test2 with its pixels rotated by 90°, test3 with its
 * pixels replaced by a near-constant field. Each gets Study/Series/SOP Instance UIDs derived from its
 * name (a study of its own); headers are edited with dcmtk `dcmodify`, pixels with dcmjs.
 */
export interface GateDemoCase {
  file: string;
  from: string;
  /** What the worklist should show after "not analysed: ". */
  expected: RegExp;
  note: string;
}

export const GATE_DEMO_CASES: GateDemoCase[] = [
  { file: "gate-hip-cr-as-chest.dcm", from: "RG2_JPLL.dcm", expected: /^not a chest radiograph/, note: "hip CR (NEMA RG2) with Body Part CHEST, View PA: the gate says not a chest radiograph" },
  { file: "gate-rotated-test2.dcm", from: "test2.dcm", expected: /^rotated by (90|270)°/, note: "test2 rotated by 90°: the gate says rotated" },
  { file: "gate-blank-test3.dcm", from: "test3.dcm", expected: /^(blank or near-constant image|too few grey levels)/, note: "test3 replaced by a near-constant field: the gate says blank / too few grey levels" },
];

function withPixels(src: string, out: string, f: (px: Uint8Array, rows: number, cols: number) => Uint8Array): void {
  const b = readFileSync(src);
  const file = dcmjs.data.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  const dict = file.dict as Record<string, { Value: unknown[] }>;
  const rows = dict["00280010"]!.Value[0] as number;
  const cols = dict["00280011"]!.Value[0] as number;
  const px = new Uint8Array(dict["7FE00010"]!.Value[0] as ArrayBuffer);
  if (px.length !== rows * cols) throw new Error(`${src}: expected ${rows * cols} bytes of 8-bit pixels, found ${px.length}`);
  const out8 = f(px, rows, cols);
  dict["7FE00010"]!.Value = [out8.buffer];
  writeFileSync(out, Buffer.from(file.write()));
}

function rotate90(px: Uint8Array, rows: number, cols: number): Uint8Array {
  if (rows !== cols) throw new Error("rotate90 keeps the header's Rows/Columns: square images only");
  const o = new Uint8Array(px.length);
  for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) o[y * cols + x] = px[(rows - 1 - x) * cols + y]!;
  return o;
}

/** Writes the cases into workDir; returns each with its path and Study Instance UID. */
export function makeGateDemoCases(sourceDir: string, workDir: string): (GateDemoCase & { path: string; studyInstanceUid: string })[] {
  return GATE_DEMO_CASES.map((c) => {
    const src = join(sourceDir, c.from);
    if (!existsSync(src)) throw new Error(`demo gate case ${c.file}: ${src} is missing`);
    const out = join(workDir, c.file);
    if (c.from === "RG2_JPLL.dcm") copyFileSync(src, out);
    else if (c.from === "test2.dcm") withPixels(src, out, rotate90);
    else withPixels(src, out, (px) => px.map((_, i) => 127 + (i % 3)));
    const uids = { study: deriveUid("cxr-demo", c.file, "study"), series: deriveUid("cxr-demo", c.file, "series"), sop: deriveUid("cxr-demo", c.file, "sop") };
    const tags = c.from === "RG2_JPLL.dcm" ? ["-i", "(0018,0015)=CHEST", "-i", "(0018,5101)=PA"] : [];
    execFileSync("dcmodify", ["-nb", "-m", `(0020,000d)=${uids.study}`, "-m", `(0020,000e)=${uids.series}`, "-m", `(0008,0018)=${uids.sop}`, ...tags, out], { stdio: "pipe" });
    return { ...c, path: out, studyInstanceUid: uids.study };
  });
}
