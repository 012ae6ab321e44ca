/**
 * Builds the image-content gate (with --build, or when models/gate is absent) and measures each of
 * its checks on held-out images: the test split of ../shared/data/nih/labels.csv (patient-level,
 * never used to build the gate), those images with each fault applied, the shared real DICOM files
 * (chest films, the fake MONOCHROME1 copy, the hip CR sent as chest, CT/MR), and degraded copies.
 * Writes docs/gate-metrics.json and the table in docs/gate.md; prints the table.
 *   npx tsx bench/gate.ts [--build]
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readDicom } from "../src/dicom/read.ts";
import { loadPresentationImage, presentationFromDicom, type PresentationImage } from "../src/image/presentation.ts";
import { resizeGray } from "../src/image/resize.ts";
import { buildGate, sampleFeatures, splitRows, allVariants } from "../src/gate/build.ts";
import { gateFeatures, openGateTrunk, type GateTrunkSpec } from "../src/gate/features.ts";
import { DEFAULT_GATE_LIMITS, GATE_DIR, judgeScores, judgeStatistics, readGateModel, scoreGateFeatures, type GateCheck, type GateModel } from "../src/gate/gate.ts";
import { imageStatistics } from "../src/gate/statistics.ts";
import { DEMO_DIR } from "../src/training/demo.ts";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const shared = resolve(root, "../shared/data");
const labels = join(shared, "nih/labels.csv");
const images = join(shared, "nih/images");
const dicom = (f: string) => join(shared, "dicom", f);
const cacheDir = join(root, ".cache/features");

const demo = JSON.parse(readFileSync(join(DEMO_DIR, "demo.json"), "utf8")) as { trunk: { seed: number }; card: { input: GateTrunkSpec["input"] } };
const trunkSpec: GateTrunkSpec = { init: "densenet121-random", seed: demo.trunk.seed, input: demo.card.input };
const trunk = await openGateTrunk(trunkSpec, Number(process.env.THREADS ?? 2));
process.env.GATE_PROGRESS = "1";

let model: GateModel;
if (process.argv.includes("--build") || !existsSync(join(GATE_DIR, "gate.json"))) {
  const t0 = performance.now();
  model = await buildGate({ labelsCsv: labels, imagesDir: images, trunk, trunkSpec, cacheDir, out: GATE_DIR });
  console.error(`gate built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
} else model = readGateModel();

/** The gate's decision on one image, as ImageGate.check makes it (features passed in, from the cache or computed). */
function decide(img: PresentationImage, row: Float32Array | undefined): GateCheck | "pass" {
  const s = judgeStatistics(imageStatistics(img), DEFAULT_GATE_LIMITS);
  if (s) return s.check!;
  const j = judgeScores(scoreGateFeatures(model, [row!])[0]!, model.spec.thresholds);
  return j ? j.check! : "pass";
}

interface Case { name: string; group: string; expected: GateCheck | "pass"; check: GateCheck | "pass" }
const cases: Case[] = [];

// 1. the held-out test split: each image unaltered and with each fault (features cached on disk)
const test = splitRows(labels, images, "test");
const samples = allVariants(test);
const rows = await sampleFeatures(trunk, samples, cacheDir);
for (let i = 0; i < samples.length; i++) {
  const s = samples[i]!;
  const img = await loadPresentationImage(s.row.path);
  const expected: GateCheck | "pass" = s.variant === "original" ? "pass" : s.variant === "inverted" ? "inverted" : "rotated";
  // statistics of a faulted copy are those of the original (same pixels), so the original image stands in
  cases.push({ name: `${s.row.key} ${s.variant}`, group: `NIH test split, ${s.variant}`, expected, check: decide(img, rows[i]) });
}

// 2. degraded copies of the test images (no trunk needed: statistics checks come first)
for (const r of test) {
  const img = await loadPresentationImage(r.path);
  const st = imageStatistics(img);
  let seed = 1;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.02;
  const blank = { ...img, data: img.data.map(() => Math.min(1, Math.max(0, st.mean + noise()))) };
  const levels = { ...img, data: img.data.map((v) => Math.round(v * 15) / 15) };
  const small = { ...img, width: 128, height: 128, data: resizeGray(img.data, img.width, img.height, 128, 128) };
  for (const [variant, x, expected] of [["blank (mean + noise ±0.01)", blank, "blank"], ["16 grey levels", levels, "too few grey levels"], ["128x128", small, "too small"]] as const) {
    cases.push({ name: `${r.key} ${variant}`, group: `NIH test split, ${variant}`, expected, check: decide(x, undefined) });
  }
}

// 3. the shared real DICOM files
const real: [string, GateCheck | "pass", string][] = [
  ["test1.dcm", "pass", "chest DX"], ["test2.dcm", "pass", "chest DX"], ["test3.dcm", "pass", "chest DX"], ["rsna_cr_jpeg_baseline.dcm", "pass", "chest CR"],
  ["rsna_cr_jpeg_baseline_fake_monochrome1.dcm", "inverted", "fake MONOCHROME1"],
  ["RG2_JPLL.dcm", "not a chest radiograph", "hip CR"], ["CT_small.dcm", "not a chest radiograph", "CT"], ["MR_small_implicit.dcm", "not a chest radiograph", "MR"],
  ["JPEG-lossy.dcm", "not a chest radiograph", "pydicom 12-bit JPEG"], ["image_dfl.dcm", "not a chest radiograph", "pydicom deflated"], ["SC_rgb_jpeg_dcmtk.dcm", "not a chest radiograph", "RGB test pattern"],
];
for (const [f, expected, what] of real) {
  const img = await presentationFromDicom(readDicom(dicom(f)));
  const [row] = judgeStatistics(imageStatistics(img), DEFAULT_GATE_LIMITS) ? [undefined] : await gateFeatures(trunk, [img]);
  cases.push({ name: f, group: `shared DICOM: ${what}`, expected, check: decide(img, row) });
}
await trunk.close();

// Per check: sensitivity over the cases that should fail it (caught at all / with this reason), specificity over good images (not flagged by it).
const checks: GateCheck[] = ["inverted", "rotated", "not a chest radiograph", "blank", "too few grey levels", "too small"];
const good = cases.filter((c) => c.expected === "pass");
const table = checks.map((check) => {
  const pos = cases.filter((c) => c.expected === check);
  return {
    check,
    positives: pos.length,
    caughtAnyReason: pos.filter((c) => c.check !== "pass").length,
    caughtThisReason: pos.filter((c) => c.check === check).length,
    sensitivity: pos.length ? pos.filter((c) => c.check === check).length / pos.length : null,
    goodImages: good.length,
    goodFlagged: good.filter((c) => c.check === check).length,
    specificity: 1 - good.filter((c) => c.check === check).length / good.length,
  };
});
const overall = { goodImages: good.length, goodPassed: good.filter((c) => c.check === "pass").length, faulty: cases.length - good.length, faultyCaught: cases.filter((c) => c.expected !== "pass" && c.check !== "pass").length };
const missed = cases.filter((c) => c.check !== c.expected);
const out = { gate: { version: model.spec.version, thresholds: model.spec.thresholds, built: model.spec.built }, limits: DEFAULT_GATE_LIMITS, heldOut: "NIH test split (patient-level, labels.csv) + shared DICOM files; none used to build the gate", table, overall, mismatches: missed.map(({ name, expected, check }) => ({ name, expected, got: check })) };
writeFileSync(join(root, "docs/gate-metrics.json"), `${JSON.stringify(out, null, 2)}\n`);

const pct = (x: number | null) => (x === null ? "—" : `${(100 * x).toFixed(1)}%`);
const lines = [
  "| check | held-out positives | caught (this reason) | caught (any reason) | sensitivity | good images flagged by it | specificity |",
  "|---|---|---|---|---|---|---|",
  ...table.map((t) => `| ${t.check} | ${t.positives} | ${t.caughtThisReason} | ${t.caughtAnyReason} | ${pct(t.sensitivity)} | ${t.goodFlagged}/${t.goodImages} | ${pct(t.specificity)} |`),
  `| **whole gate** | ${overall.faulty} faulty | | ${overall.faultyCaught} | ${pct(overall.faultyCaught / overall.faulty)} | ${overall.goodImages - overall.goodPassed}/${overall.goodImages} not analysed | ${pct(overall.goodPassed / overall.goodImages)} |`,
];
const md = join(root, "docs/gate.md");
const doc = readFileSync(md, "utf8");
const start = doc.indexOf("<!-- gate-table -->");
const end = doc.indexOf("<!-- /gate-table -->");
if (start >= 0 && end > start) writeFileSync(md, `${doc.slice(0, start)}<!-- gate-table -->\n${lines.join("\n")}\n${doc.slice(end)}`);
console.log(lines.join("\n"));
if (missed.length) console.log(`\nmismatches (${missed.length}):\n${missed.map((m) => `  ${m.name}: expected ${m.expected}, got ${m.check}`).join("\n")}`);
