import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { auroc } from "../../src/evaluation/auroc.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { parseCsv, toCsv } from "../../src/training/dataset.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const has = requireSharedData();

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const wo = process.stdout.write;
  const we = process.stderr.write;
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await main(["node", "cxr", ...args]);
    return { code, out: out.join(""), err: err.join("") };
  } finally {
    process.stdout.write = wo;
    process.stderr.write = we;
  }
}

describe.runIf(has)("cxr eval on real NIH images", () => {
  const tmp = tempDir("cxr-eval-");
  const model = join(tmp.dir, "model");
  const images = join(tmp.dir, "images");
  const labels = join(tmp.dir, "labels.csv");
  let header: string[];
  let rows: string[][];
  beforeAll(() => {
    // A 64 px model keeps this about plumbing; 20 valid rows + 10 train rows, one row whose file is
    // missing and one whose file is not an image.
    initModelDir({ inputSize: 64, seed: 5, out: model });
    mkdirSync(images);
    const [h, ...all] = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8"));
    header = h!;
    const split = header.indexOf("Split");
    rows = [...all.filter((r) => r[split] === "valid").slice(0, 20), ...all.filter((r) => r[split] === "train").slice(0, 10)];
    for (const r of rows) symlinkSync(join(SHARED_NIH, "images", r[0]!), join(images, r[0]!));
    const missing = rows[0]!.slice();
    missing[0] = "99999999_000.png";
    const corrupt = rows[1]!.slice();
    corrupt[0] = "corrupt.png";
    writeFileSync(join(images, "corrupt.png"), "this is not a PNG");
    rows.push(missing, corrupt);
    writeFileSync(labels, toCsv(header, rows));
  });
  afterAll(() => tmp.cleanup());

  it("--split valid: metrics.json, predictions.csv, report.html, roc.png (+ SVGs); missing and unreadable rows are reported", async () => {
    const out = join(tmp.dir, "eval");
    const r = await cli(["eval", "--labels", labels, "--images", images, "--model", model, "--out", out, "--split", "valid", "--bootstrap", "200"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain("99999999_000.png");
    expect(r.err).toContain("corrupt.png");
    const metrics = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"));
    expect(metrics.n_images).toBe(20);
    expect(metrics.skipped.map((s: { key: string }) => s.key).sort()).toEqual(["99999999_000.png", "corrupt.png"]);
    expect(Object.keys(metrics.labels)).toEqual([...NIH_LABELS]);

    // predictions.csv holds what metrics.json was computed from.
    const [ph, ...prows] = parseCsv(readFileSync(join(out, "predictions.csv"), "utf8"));
    expect(ph).toEqual(["Image", ...NIH_LABELS]);
    expect(prows).toHaveLength(20);
    const truthOf = new Map(rows.map((x) => [x[0]!, x]));
    let defined = 0;
    let sum = 0;
    for (const label of NIH_LABELS) {
      const j = ph!.indexOf(label);
      const t = prows.map((p) => Number(truthOf.get(p[0]!)![header.indexOf(label)]));
      const s = prows.map((p) => Number(p[j]));
      const m = metrics.labels[label];
      expect(m.n_pos).toBe(t.filter((v) => v === 1).length);
      expect(m.n_neg).toBe(t.filter((v) => v === 0).length);
      const a = auroc(t, s);
      if (Number.isNaN(a)) {
        expect(m.auroc).toBeNull();
        expect(m.ci95).toBeNull();
      } else {
        expect(m.auroc).toBeCloseTo(a, 5);
        expect(m.ci95[0]).toBeLessThanOrEqual(m.ci95[1]);
        defined++;
        sum += m.auroc;
      }
    }
    expect(metrics.mean_auroc).toBeCloseTo(sum / defined, 10);

    const png = readFileSync(join(out, "roc.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    for (const f of ["roc.svg", "calibration.svg", "calibration.png", "class-frequency.svg", "class-frequency.png"]) expect(existsSync(join(out, f)), f).toBe(true);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("corrupt.png");
    expect(html).toContain("Not evaluated (2)");
    expect(html).toContain("<svg");
  }, 300_000);

  it("without a Split column every row is used; --split on such a CSV is an error", async () => {
    const noSplit = join(tmp.dir, "nosplit.csv");
    const s = header.indexOf("Split");
    writeFileSync(noSplit, toCsv(header.filter((_, i) => i !== s), rows.map((r) => r.filter((_, i) => i !== s))));
    const out = join(tmp.dir, "eval-all");
    const r = await cli(["eval", "--labels", noSplit, "--images", images, "--model", model, "--out", out, "--bootstrap", "50", "--provider", "cpu", "--threads", "1"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")).n_images).toBe(30);
    const bad = await cli(["eval", "--labels", noSplit, "--images", images, "--model", model, "--out", out, "--split", "valid"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("has no Split column");
    const badProvider = await cli(["eval", "--labels", noSplit, "--images", images, "--model", model, "--out", out, "--provider", "metal"]);
    expect(badProvider.code).not.toBe(0);
    expect(badProvider.err).toContain('--provider must be one of cpu, webgpu, cuda, tensorrt, got "metal"');
  }, 300_000);
});
