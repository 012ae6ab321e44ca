/**
 * C-STORE ingest throughput: the cxr listener (its own SCP, src/dicom-listener/scp.ts, streaming to an fsynced spool file +
 * SQLite record before each answer) against dcmtk's storescp, on the same files in the same run.
 *
 *   npx tsx bench/ingest.ts [--n 40] [--runs 3]
 *
 * Sender: dcmtk storescu, one association, N files (test1..3 with new UIDs, 1 MB each, implicit VR LE).
 * Both receivers and the sender run with TCP_NODELAY=1 (dcmtk reads it from the environment; the
 * cxr listener sets TCP_NODELAY on every socket). storescp writes each file (no fsync, as dcmtk does);
 * cxr writes, fdatasyncs the file and fsyncs its folder entry (in parallel), parses the header and commits the
 * instance to SQLite (WAL, synchronous=NORMAL; the fsynced spool is what recovery trusts) before it answers.
 * Prints one JSON object, then a table of medians; ratio = cxr throughput / storescp throughput with one
 * sender (target ≥ 0.8) — the headline, with durability on. Also shown: 4 concurrent senders (N files
 * split over 4 storescu associations; storescp with --fork, a process per association), a row
 * labelled DIAGNOSTIC with cxr's fsyncs switched off (not durable; it shows what the disk flush costs),
 * and three FLOOR rows: bench/bare-receiver.ts, which does nothing but receive and (not) make each
 * instance durable — writes nothing; a durable file per instance; a preallocated log — so the table
 * also says how close to storescp ANY receiver that flushes before it answers can get on this disk
 * (docs/ingest.md). And a real PACS receiving the same files from the same sender: Orthanc (Debian's
 * build, the repo's fixture configuration; SyncStorageArea defaults to true since Orthanc 1.7.4, so it
 * fsyncs each file, and records it in its SQLite index, before it answers), 1 and 4 senders.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, SOP_CLASS } from "../src/config/service.ts";
import { startListener } from "../src/dicom-listener/listener.ts";
import { openSqliteStore } from "../src/store/index.ts";
import { startOrthanc } from "../src/peers/orthanc.ts";
import { freePort } from "../src/peers/ports.ts";
import { SHARED_DICOM } from "../test/helpers/shared-data.ts";
import { startBareReceiver, type BareMode } from "./bare-receiver.ts";

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
  // Measured after dcmodify (new UIDs change the sizes a little), not assumed.
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);

  // Four senders at once: the N files split into 4 lists, one storescu (one association) each.
  const quarters = [0, 1, 2, 3].map((q) => files.filter((_, i) => i % 4 === q));
  const sendConcurrently = async (port: number, aec: string) => {
    const t0 = performance.now();
    await Promise.all(quarters.map((q) => sendAll(port, aec, q)));
    return performance.now() - t0;
  };

  async function cxrRun(tag: string, syncToDisk: boolean, send: (port: number) => Promise<number>): Promise<number> {
    const dir = join(work, `cxr-${tag}`);
    const store = openSqliteStore(join(dir, "store.sqlite"));
    const port = await freePort();
    const listener = await startListener({
      config: listenerConfigSchema.parse({ port, aeTitle: "CXR_BENCH", maxPduLength: MAX_PDU, acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] }),
      store,
      spoolDir: join(dir, "spool"),
      quarantineDir: join(dir, "quarantine"),
      logger: pino({ level: "silent" }),
      syncToDisk,
    });
    try {
      const ms = await send(port);
      let stored = 0;
      for (const s of await store.list()) stored += await store.instanceCount(s.studyInstanceUid);
      if (stored !== N) throw new Error(`cxr (${tag}) stored ${stored} of ${N}`);
      return ms;
    } finally {
      await listener.close();
      await store.close();
    }
  }

  async function storescpRun(tag: string, fork: boolean, send: (port: number) => Promise<number>): Promise<number> {
    const out = join(work, `dcmtk-${tag}`);
    mkdirSync(out);
    const sport = await freePort();
    // --fork: one child process per association, as a real multi-sender storescp runs.
    const scp: ChildProcess = spawn("storescp", ["-aet", "STORESCP", "+xa", "-dhl", ...(fork ? ["--fork"] : []), "-od", out, String(sport)], { env, stdio: "ignore" });
    try {
      await waitEcho(sport, "STORESCP");
      return await send(sport);
    } finally {
      scp.kill("SIGTERM");
      await new Promise((r) => scp.once("exit", r));
    }
  }

  let orthancVersion = "?";
  async function orthancRun(tag: string, send: (port: number, aec: string) => Promise<number>): Promise<number> {
    const orthanc = await startOrthanc({ dir: join(work, `orthanc-${tag}`) });
    try {
      await waitEcho(orthanc.dicomPort, orthanc.aet);
      orthancVersion = (await orthanc.rest<{ Version: string }>("/system")).Version;
      const ms = await send(orthanc.dicomPort, orthanc.aet);
      const stored = (await orthanc.rest<{ CountInstances: number }>("/statistics")).CountInstances;
      if (stored !== N) throw new Error(`Orthanc (${tag}) stored ${stored} of ${N}`);
      return ms;
    } finally {
      await orthanc.stop();
    }
  }

  async function bareRun(tag: string, mode: BareMode): Promise<number> {
    const receiver = await startBareReceiver(mode, join(work, `bare-${tag}`), bytes + N * 4096);
    try {
      const ms = await sendAll(receiver.port, "BARE", files);
      if (receiver.received() !== N) throw new Error(`bare ${mode} receiver answered ${receiver.received()} of ${N}`);
      return ms;
    } finally {
      await receiver.close();
    }
  }

  const rows = {
    cxr: [] as number[],
    storescp: [] as number[],
    cxrNoSync: [] as number[],
    cxr4: [] as number[],
    storescp4: [] as number[],
    orthanc: [] as number[],
    orthanc4: [] as number[],
    bareDiscard: [] as number[],
    bareFile: [] as number[],
    bareLog: [] as number[],
  };
  // Before each timed receiver: `sync`, so that no receiver pays for the write-back of the dirty
  // pages an earlier one left behind (storescp never flushes its 40 MB; the kernel would write them
  // out during the next receiver's run and stall its fsyncs).
  const settled = <T>(run: () => Promise<T>) => {
    execFileSync("sync");
    return run();
  };
  for (let run = 0; run < RUNS; run++) {
    rows.cxr.push(await settled(() => cxrRun(`${run}`, true, (port) => sendAll(port, "CXR_BENCH", files))));
    rows.storescp.push(await settled(() => storescpRun(`${run}`, false, (port) => sendAll(port, "STORESCP", files))));
    rows.cxrNoSync.push(await settled(() => cxrRun(`nosync-${run}`, false, (port) => sendAll(port, "CXR_BENCH", files))));
    rows.cxr4.push(await settled(() => cxrRun(`4-${run}`, true, (port) => sendConcurrently(port, "CXR_BENCH"))));
    rows.storescp4.push(await settled(() => storescpRun(`4-${run}`, true, (port) => sendConcurrently(port, "STORESCP"))));
    rows.orthanc.push(await settled(() => orthancRun(`${run}`, (port, aec) => sendAll(port, aec, files))));
    rows.orthanc4.push(await settled(() => orthancRun(`4-${run}`, (port, aec) => sendConcurrently(port, aec))));
    rows.bareDiscard.push(await settled(() => bareRun(`discard-${run}`, "discard")));
    rows.bareFile.push(await settled(() => bareRun(`file-${run}`, "file")));
    rows.bareLog.push(await settled(() => bareRun(`log-${run}`, "log")));
  }
  const summary = (ms: number[]) => {
    const m = median(ms);
    return { ms: ms.map(Math.round), medianMs: Math.round(m), instancesPerSecond: +(N / (m / 1000)).toFixed(1), mbPerSecond: +(bytes / 1e6 / (m / 1000)).toFixed(1) };
  };
  const result = {
    bench: "ingest",
    files: N,
    bytesPerFile: Math.round(bytes / N),
    runs: RUNS,
    maxPduLength: MAX_PDU,
    cxr: summary(rows.cxr),
    storescp: summary(rows.storescp),
    ratio: +(median(rows.storescp) / median(rows.cxr)).toFixed(3),
    target: 0.8,
    fourSenders: {
      cxr: summary(rows.cxr4),
      storescpFork: summary(rows.storescp4),
      ratio: +(median(rows.storescp4) / median(rows.cxr4)).toFixed(3),
    },
    // A real PACS on the same files and sender: ratio = Orthanc throughput / storescp throughput.
    orthancVersion,
    orthanc: { ...summary(rows.orthanc), ratio: +(median(rows.storescp) / median(rows.orthanc)).toFixed(3) },
    orthancFourSenders: { ...summary(rows.orthanc4), ratio: +(median(rows.storescp4) / median(rows.orthanc4)).toFixed(3) },
    diagnosticNoSync: { cxr: summary(rows.cxrNoSync), ratio: +(median(rows.storescp) / median(rows.cxrNoSync)).toFixed(3) },
    // The yardstick (bench/bare-receiver.ts): the same sender into receivers that do nothing but
    // (not) make each instance durable — what the disk allows any durable receiver, against storescp.
    floor: Object.fromEntries(
      (
        [
          ["bareDiscard", rows.bareDiscard],
          ["bareFile", rows.bareFile],
          ["bareLog", rows.bareLog],
        ] as const
      ).map(([k, ms]) => [k, { ...summary(ms), ratio: +(median(rows.storescp) / median(ms)).toFixed(3) }]),
    ) as Record<"bareDiscard" | "bareFile" | "bareLog", ReturnType<typeof summary> & { ratio: number }>,
  };
  console.log(JSON.stringify(result));
  console.log("");
  const line = (name: string, r: ReturnType<typeof summary>) =>
    console.log(`${name.padEnd(44)} ${String(r.medianMs).padStart(9)}   ${String(r.instancesPerSecond).padStart(6)}   ${String(r.mbPerSecond).padStart(5)}`);
  console.log(`${"receiver".padEnd(44)} median ms   inst/s    MB/s`);
  line("cxr (1 sender)", result.cxr);
  line("storescp (1 sender)", result.storescp);
  line("cxr (4 senders)", result.fourSenders.cxr);
  line("storescp --fork (4 senders)", result.fourSenders.storescpFork);
  line(`Orthanc ${orthancVersion} (1 sender)`, result.orthanc);
  line(`Orthanc ${orthancVersion} (4 senders)`, result.orthancFourSenders);
  line("DIAGNOSTIC cxr without fsync (not durable)", result.diagnosticNoSync.cxr);
  line("FLOOR bare receiver, writes nothing", result.floor.bareDiscard);
  line("FLOOR bare receiver, file+fdatasync+dir", result.floor.bareFile);
  line("FLOOR bare receiver, prealloc log+fdatasync", result.floor.bareLog);
  console.log(`ratio (cxr throughput / storescp throughput, 1 sender): ${result.ratio}  (target ≥ ${result.target})`);
  console.log(`ratio with 4 senders (cxr / storescp --fork): ${result.fourSenders.ratio}`);
  console.log(`Orthanc ratios (a real PACS / storescp): 1 sender ${result.orthanc.ratio}, 4 senders (/ storescp --fork) ${result.orthancFourSenders.ratio}`);
  console.log(`DIAGNOSTIC ratio without fsync (cxr not durable / storescp, 1 sender): ${result.diagnosticNoSync.ratio}`);
  console.log(
    `FLOOR ratios (bare receiver / storescp, 1 sender): writes nothing ${result.floor.bareDiscard.ratio}, durable file ${result.floor.bareFile.ratio}, durable preallocated log ${result.floor.bareLog.ratio}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
