import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireMesa, spawnNodeWithMesa } from "../helpers/mesa.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const repo = join(import.meta.dirname, "../..");
const run = requireMesa() && requireSharedData();
const tmp = tempDir("cxr-webgpu-");
const modelDir = join(tmp.dir, "densenet64");

describe.runIf(run)("webgpu execution provider on lavapipe (no GPU)", () => {
  beforeAll(() => {
    const init = spawnSync(process.execPath, [join(repo, "bin/cxr.js"), "model", "init", "--input-size", "64", "--seed", "9", "--out", modelDir], { cwd: repo, encoding: "utf8" });
    expect(init.status, init.stderr).toBe(0);
  });
  afterAll(() => tmp.cleanup());

  it("runs DenseNet121-14 at 64 px and matches the CPU provider's probabilities and heatmaps", () => {
    // Dawn picks its Vulkan driver when ORT starts, so the Mesa environment is set for a child process.
    const script = `
      import { Classifier } from "./src/inference/classifier.ts";
      import { loadPresentationImage } from "./src/image/presentation.ts";
      const img = await loadPresentationImage(${JSON.stringify(join(SHARED_NIH, "images/00000001_000.png"))});
      const out = {};
      for (const provider of ["cpu", "webgpu"]) {
        const t0 = performance.now();
        const c = await Classifier.load(${JSON.stringify(modelDir)}, { provider });
        const r = await c.infer(img);
        out[provider] = { provider: c.provider, sessionMs: performance.now() - t0, probabilities: r.findings.map((f) => f.probability), heatmaps: r.heatmaps.map((h) => Array.from(h.data)) };
        await c.close();
      }
      console.log("RESULT " + JSON.stringify(out));`;
    const child = spawnNodeWithMesa(["--import", "tsx", "--input-type=module", "-e", script], 240_000);
    const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    expect(line, `${child.stdout}\n${child.stderr}`).toBeDefined();
    const out = JSON.parse(line!.slice(7)) as Record<"cpu" | "webgpu", { provider: string; probabilities: number[]; heatmaps: number[][] }>;
    expect(out.webgpu.provider).toBe("webgpu");
    expect(out.webgpu.probabilities).toHaveLength(14);
    const probDiff = Math.max(...out.cpu.probabilities.map((p, k) => Math.abs(p - out.webgpu.probabilities[k]!)));
    expect(probDiff).toBeLessThan(1e-5);
    const camDiff = Math.max(...out.cpu.heatmaps.flatMap((h, k) => h.map((v, p) => Math.abs(v - out.webgpu.heatmaps[k]![p]!))));
    expect(camDiff).toBeLessThan(1e-3);
  });
});
