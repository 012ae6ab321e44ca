/**
 * Decode + LUT speed on the RG2 files (NEMA WG04 CR 2140x1760, 10-bit, seven transfer syntaxes),
 * cxr against dcmtk's dcmj2pnm in the same run.
 *
 *   npx tsx bench/decode.ts [--n 5]
 *
 * cxr: read file + decode frame 0 + Modality/VOI/inversion to float presentation values (in-process,
 * codecs initialized once). Also shown: the same plus encoding the 16-bit PNG that `cxr pixels` writes.
 * dcmtk: `dcmj2pnm +Wi 1 +on2 in out.png` (read + decode + first VOI window + 16-bit PNG write), a
 * process per run as it is used; for JPEG-LS its sibling `dcml2pnm` (dcmj2pnm has no JPEG-LS codec),
 * and for JPEG 2000, which dcmtk cannot decode, GDCM's `gdcmconv --raw` followed by `dcm2pnm`.
 * The peer's 16-bit output is compared with ours pixel by pixel.
 * Prints one JSON object, then a plain table of medians (ms) and ratios (cxr / dcmtk; < 1 = cxr faster).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { decodeStoredFrameSync, initCodecs, readDicom } from "../src/dicom/index.ts";
import { encodePng16, presentationFromStoredFrame, toUint16, type PresentationImage } from "../src/image/index.ts";
import { RG2_FILES, SHARED_DICOM } from "../test/helpers/shared-data.ts";

const nArg = process.argv.indexOf("--n");
const N = nArg > 0 ? Number(process.argv[nArg + 1]) : 5;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function cxrPresent(path: string): PresentationImage {
  const file = readDicom(path);
  return presentationFromStoredFrame(file, decodeStoredFrameSync(file));
}

/** The dcmtk command line(s) that turn `input` into a windowed 16-bit PNG, per transfer syntax family. */
function peerCommands(input: string, out: string, ts: string, dir: string): string[][] {
  const render = ["+Wi", "1", "+on2"];
  if (ts === "1.2.840.10008.1.2.4.80" || ts === "1.2.840.10008.1.2.4.81") return [["dcml2pnm", ...render, input, out]];
  if (ts === "1.2.840.10008.1.2.4.90" || ts === "1.2.840.10008.1.2.4.91") {
    const raw = join(dir, "gdcm-raw.dcm");
    return [["gdcmconv", "--raw", input, raw], ["dcm2pnm", ...render, raw, out]];
  }
  return [["dcmj2pnm", ...render, input, out]];
}

async function main(): Promise<void> {
  await initCodecs();
  const dir = mkdtempSync(join(tmpdir(), "cxr-bench-"));
  const dcmtkVersion = /v[\d.]+/.exec(execFileSync("dcmj2pnm", ["--version"]).toString())?.[0] ?? "unknown";
  // a peer process's fixed cost (exec + dcmtk's dictionary load), shown so the ratio can be read either way
  const startup: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    execFileSync("dcmj2pnm", ["--version"]);
    startup.push(performance.now() - t);
  }
  const rows = [];
  try {
    for (const name of RG2_FILES) {
      const path = join(SHARED_DICOM, name);
      cxrPresent(path); // warm-up: JIT and the WASM codec's first-use allocation
      const cxrMs: number[] = [];
      const cxrPngMs: number[] = [];
      const dcmtkMs: number[] = [];
      let img: PresentationImage | undefined;
      const dcmtkOut = join(dir, `${name}.png`);
      const ts = readDicom(path, { withPixelData: false }).transferSyntaxUid;
      const peer = peerCommands(path, dcmtkOut, ts, dir);
      for (let i = 0; i < N; i++) {
        let t = performance.now();
        img = cxrPresent(path);
        cxrMs.push(performance.now() - t);
        t = performance.now();
        await encodePng16(cxrPresent(path));
        cxrPngMs.push(performance.now() - t);
        t = performance.now();
        for (const [cmd, ...args] of peer) execFileSync(cmd!, args);
        dcmtkMs.push(performance.now() - t);
      }
      const ours = toUint16(img!);
      const { data } = await sharp(dcmtkOut).toColourspace("grey16").raw({ depth: "ushort" }).toBuffer({ resolveWithObject: true });
      const theirs = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
      let maxAbsDiff16 = 0;
      for (let i = 0; i < ours.length; i++) maxAbsDiff16 = Math.max(maxAbsDiff16, Math.abs(ours[i]! - theirs[i]!));
      const row = {
        file: name,
        transferSyntaxUid: ts,
        peer: peer.map((c) => c[0]).join(" + "),
        cxrMs: median(cxrMs),
        cxrWithPngMs: median(cxrPngMs),
        peerMs: median(dcmtkMs),
        ratio: median(cxrMs) / median(dcmtkMs),
        ratioWithPng: median(cxrPngMs) / median(dcmtkMs),
        maxAbsDiff16VsPeer: maxAbsDiff16,
      };
      rows.push(row);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const result = { benchmark: "decode", repetitions: N, peerProcessStartupMs: median(startup), peer: `dcmtk ${dcmtkVersion} (+Wi 1 +on2), gdcmconv for JPEG 2000`, node: process.version, rows };
  console.log(JSON.stringify(result, null, 2));
  console.log(`\npeer process start-up (dcmj2pnm --version), median: ${median(startup).toFixed(1)} ms (included in peer ms)`);
  const f = (x: number) => x.toFixed(1).padStart(9);
  console.log(`\n${"file".padEnd(14)}${"cxr ms".padStart(9)}${"+png ms".padStart(9)}${"peer ms".padStart(9)}${"ratio".padStart(8)}${"ratio+png".padStart(10)}  max|diff16| peer`);
  for (const r of rows) {
    console.log(`${r.file.padEnd(14)}${f(r.cxrMs)}${f(r.cxrWithPngMs)}${f(r.peerMs)}${r.ratio.toFixed(2).padStart(8)}${r.ratioWithPng.toFixed(2).padStart(10)}  ${String(r.maxAbsDiff16VsPeer).padEnd(11)} ${r.peer}`);
  }
}

await main();
