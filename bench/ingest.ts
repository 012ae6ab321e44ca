/**
 * C-STORE ingest throughput: the cxr listener (dcmjs-dimse SCP streaming to an fsynced spool file +
 * SQLite record before each answer) against dcmtk's storescp, on the same files in the same run.
 *
 *   npx tsx bench/ingest.ts [--n 40] [--runs 3]
 *
 * Sender: dcmtk storescu, one association, N files (test1..3 with new UIDs, 1 MB each, implicit VR LE).
 * Both receivers and the sender run with TCP_NODELAY=1 (dcmtk reads it from the environment; the
 * cxr listener sets TCP_NODELAY on every socket). storescp writes each file (no fsync, as dcmtk does);
 * cxr writes, fsyncs the file and its folder entry (in parallel), parses the header and commits the
 * instance to SQLite (WAL, synchronous=NORMAL; the fsynced spool is what recovery trusts) before it answers.
 * Prints one JSON object, then a table of medians; ratio = cxr throughput / storescp throughput (target ≥ 0.8).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, SOP_CLASS } from "../src/config/service.ts";
import { startListener } from "../src/dicom-listener/listener.ts";
import { SqliteStudyStore } from "../src/intake/store.ts";
import { freePort } from "../src/peers/ports.ts";
import { SHARED_DICOM } from "../test/helpers/shared-data.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("--n", 40);
const RUNS = arg("--runs", 3);
const MAX_PDU = arg("--max-pdu", listenerConfigSchema.parse({}).maxPduLength);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const env = { ...process.env, TCP_NODELAY: "1" };

function sendAll(port: number, aec: string, files: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("storescu", ["-aet", "BENCH", "-aec", aec, "127.0.0.1", String(port), ...files], { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => (code === 0 && !/E:/.test(err) ? resolve(performance.now() - t0) : reject(new Error(`storescu → ${aec}: exit ${code} ${err.slice(0, 400)}`))));
  });
}

async function waitEcho(port: number, aec: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("echoscu", ["-aec", aec, "127.0.0.1", String(port)], { stdio: "ignore" });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${aec} on ${port} never answered C-ECHO`);
}

const work = mkdtempSync(join(tmpdir(), "cxr-bench-ingest-"));
try {
  const inputs = join(work, "in");
  mkdirSync(inputs);
  const files: string[] = [];
  for (let i = 0; i < N; i++) {
    const f = join(inputs, `f${i}.dcm`);
    copyFileSync(join(SHARED_DICOM, `test${(i % 3) + 1}.dcm`), f);
    files.push(f);
  }
  execFileSync("dcmodify", ["-nb", "-gst", "-gse", "-gin", ...files]);
  const bytes = files.length * 1049354;

  const cxrMs: number[] = [];
  const dcmtkMs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    // cxr listener, fresh store and spool per run
    const dir = join(work, `cxr-${run}`);
    const store = new SqliteStudyStore(join(dir, "store.sqlite"));
    const port = await freePort();
    const listener = await startListener({
      config: listenerConfigSchema.parse({ port, aeTitle: "CXR_BENCH", maxPduLength: MAX_PDU, acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] }),
      store,
      spoolDir: join(dir, "spool"),
      quarantineDir: join(dir, "quarantine"),
      logger: pino({ level: "silent" }),
    });
    cxrMs.push(await sendAll(port, "CXR_BENCH", files));
    const stored = store.db.prepare("SELECT COUNT(*) AS n FROM instances").get() as { n: number };
    if (stored.n !== N) throw new Error(`cxr stored ${stored.n} of ${N}`);
    await listener.close();
    store.close();

    // dcmtk storescp
    const out = join(work, `dcmtk-${run}`);
    mkdirSync(out);
    const sport = await freePort();
    const scp: ChildProcess = spawn("storescp", ["-aet", "STORESCP", "+xa", "-dhl", "-od", out, String(sport)], { env, stdio: "ignore" });
    await waitEcho(sport, "STORESCP");
    dcmtkMs.push(await sendAll(sport, "STORESCP", files));
    scp.kill("SIGTERM");
    await new Promise((r) => scp.once("exit", r));
  }
  const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);
  const cxr = median(cxrMs);
  const dcmtk = median(dcmtkMs);
  const result = {
    bench: "ingest",
    files: N,
    bytesPerFile: 1049354,
    runs: RUNS,
    maxPduLength: MAX_PDU,
    cxr: { ms: cxrMs.map(Math.round), medianMs: Math.round(cxr), instancesPerSecond: +(N / (cxr / 1000)).toFixed(1), mbPerSecond: +mbps(cxr).toFixed(1) },
    storescp: { ms: dcmtkMs.map(Math.round), medianMs: Math.round(dcmtk), instancesPerSecond: +(N / (dcmtk / 1000)).toFixed(1), mbPerSecond: +mbps(dcmtk).toFixed(1) },
    ratio: +(dcmtk / cxr).toFixed(3),
    target: 0.8,
  };
  console.log(JSON.stringify(result));
  console.log("");
  console.log("receiver   median ms   inst/s   MB/s");
  console.log(`cxr        ${String(result.cxr.medianMs).padStart(9)}   ${String(result.cxr.instancesPerSecond).padStart(6)}   ${String(result.cxr.mbPerSecond).padStart(4)}`);
  console.log(`storescp   ${String(result.storescp.medianMs).padStart(9)}   ${String(result.storescp.instancesPerSecond).padStart(6)}   ${String(result.storescp.mbPerSecond).padStart(4)}`);
  console.log(`ratio (cxr throughput / storescp throughput): ${result.ratio}  (target ≥ ${result.target})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
