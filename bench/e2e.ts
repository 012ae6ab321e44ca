/**
 * End-to-end latency of the service: per study, from the end of its C-STORE (storescu exits) to its
 * SR and every SC stored in Orthanc (polled over Orthanc's REST API every 50 ms), for uncompressed
 * and JPEG 2000 inputs, with 1 and 4 concurrent senders (one association per study, as modalities do).
 *
 *   npx tsx bench/e2e.ts [--studies 8] [--input-size 224] [--concurrency 2]
 *
 * The service runs in this process with `intake.singleImageImmediately` (a one-image study starts
 * when its association ends; otherwise the stable age would dominate the latency) and a seeded,
 * untrained DenseNet121-14 at the given input size on the CPU. The peer is Orthanc from the repo's
 * fixture (the PACS that receives the results). Prints one JSON object, then a table (ms).
 *
 * Time to notification (issue #16): the same studies also notify an HL7 v2 receiver built on
 * python-hl7 (Debian python3-hl7, test/notify/hl7_peer.py, answers AA), the tests' FHIR R4 server
 * (conditional creates) and a webhook receiver; per destination, from the end of the C-STORE to its
 * acknowledgement as the outbox recorded it (deliveredAt). Without python3-hl7 the HL7 column is left out.
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig, SOP_CLASS } from "../src/config/service.ts";
import { readDicom } from "../src/dicom/read.ts";
import { initModelDir } from "../src/model/model-dir.ts";
import { startOrthanc } from "../src/peers/orthanc.ts";
import { freePort } from "../src/peers/ports.ts";
import { startService, type RunningService } from "../src/service.ts";
import { SHARED_DICOM } from "../test/helpers/shared-data.ts";
import { startFhirServer } from "../test/notify/fhir-server.ts";
import { hl7PeerUnavailable, startHl7Peer, startHttp } from "../test/notify/peers.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const STUDIES = arg("--studies", 8);
const INPUT_SIZE = arg("--input-size", 224);
const CONCURRENCY = arg("--concurrency", 2);
const AET = "CXR_E2E_BENCH";
/** How long one study may take from its C-STORE to its results in Orthanc before the run fails (instead of polling forever). */
const RESULT_TIMEOUT_MS = 120_000;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
};

const work = mkdtempSync(join(tmpdir(), "cxr-bench-e2e-"));
const orthanc = await startOrthanc({ dir: join(work, "orthanc") });
const hl7Missing = hl7PeerUnavailable();
if (hl7Missing) console.error(`time to notification: no HL7 receiver (${hl7Missing})`);
const hl7Peer = hl7Missing ? undefined : await startHl7Peer({ port: await freePort(), record: join(work, "hl7.jsonl") });
const fhir = await startFhirServer();
const webhook = await startHttp((_req, _body, res) => res.writeHead(204).end());
// Closed in the finally too: a failed run must not leave the listener and pipeline timers holding the process open.
let service: RunningService | undefined;
try {
  initModelDir({ inputSize: INPUT_SIZE, seed: 1, out: join(work, "model") });
  const port = await freePort();
  const config = resolveConfig({
    dataDir: join(work, "data"),
    model: { dir: join(work, "model") },
    dicom: { aeTitle: AET, port, acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE] },
    intake: { stableAgeSeconds: 30, singleImageImmediately: true },
    pipeline: { concurrency: CONCURRENCY },
    export: { destinations: [{ aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort }], retryInitialSeconds: 0.2 },
    notify: {
      retryInitialSeconds: 0.2,
      destinations: [
        ...(hl7Peer ? [{ kind: "hl7" as const, name: "hl7", host: "127.0.0.1", port: hl7Peer.port, receivingApplication: "RIS" }] : []),
        { kind: "fhir" as const, name: "fhir", url: fhir.url },
        // Every priority: the seeded model's studies are not all urgent, and each should be timed.
        { kind: "webhook" as const, name: "webhook", url: `${webhook.url}/hook`, secret: "bench-secret-0123456789", priorities: ["urgent", "review", "routine"] },
      ],
    },
  });
  const running = (service = await startService(config, { logger: pino({ level: "warn" }), api: false }));

  let serial = 0;
  function makeInput(kind: "uncompressed" | "jpeg2000"): { path: string; study: string } {
    const i = serial++;
    const src = join(SHARED_DICOM, `test${(i % 3) + 1}.dcm`);
    const path = join(work, `${kind}-${i}.dcm`);
    if (kind === "uncompressed") copyFileSync(src, path);
    else {
      const explicit = join(work, `explicit-${i}.dcm`);
      execFileSync("dcmconv", ["+te", src, explicit]);
      execFileSync("gdcmconv", ["--j2k", explicit, path]);
    }
    execFileSync("dcmodify", ["-nb", "-gst", "-gse", "-gin", path]);
    return { path, study: String(readDicom(path, { withPixelData: false }).dataset.StudyInstanceUID) };
  }

  const cfgLines = ["[[TransferSyntaxes]]", "[U]", "TransferSyntax1 = 1.2.840.10008.1.2", "[J]", "TransferSyntax1 = 1.2.840.10008.1.2.4.90", "[[PresentationContexts]]", "[P]", "PresentationContext1 = 1.2.840.10008.5.1.4.1.1.7\\U", "PresentationContext2 = 1.2.840.10008.5.1.4.1.1.7\\J", "[[Profiles]]", "[Default]", "PresentationContexts = P"];
  const cfg = join(work, "storescu.cfg");
  writeFileSync(cfg, `${cfgLines.join("\n")}\n`);

  function send(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn("storescu", ["-xf", cfg, "Default", "-aet", "MODALITY", "-aec", AET, "127.0.0.1", String(port), path], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("close", (code) => (code === 0 && !/E:/.test(err) ? resolve(performance.now()) : reject(new Error(`storescu ${path}: ${err}`))));
    });
  }

  async function resultsInOrthanc(study: string): Promise<number> {
    const deadline = performance.now() + RESULT_TIMEOUT_MS;
    for (;;) {
      const rec = await running.store.get(study);
      if (rec?.state === "failed" || rec?.state === "rejected") throw new Error(`study ${study} ${rec.state}: ${rec.reason}`);
      const expected = rec?.outputs?.sr ? 1 + (rec.outputs.sc?.length ?? 0) + (rec.outputs.pm?.length ?? 0) : 0;
      if (expected) {
        const found = await orthanc.rest<{ ID: string; Type: string }[]>("/tools/lookup", { method: "POST", body: study });
        const id = found.find((f) => f.Type === "Study")?.ID;
        if (id && (await orthanc.rest<unknown[]>(`/studies/${id}/instances`)).length >= expected) return performance.now();
      }
      if (performance.now() > deadline) throw new Error(`study ${study}: results not in Orthanc after ${RESULT_TIMEOUT_MS / 1000} s (state ${rec?.state ?? "unknown"}${rec?.reason ? `: ${rec.reason}` : ""})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Per destination: ms from the end of the C-STORE (wall clock) to the acknowledgement the outbox recorded. */
  async function notified(study: string, storedAtWall: number): Promise<Record<string, number>> {
    const deadline = Date.now() + RESULT_TIMEOUT_MS;
    for (;;) {
      const rows = await running.store.notifications(study);
      const bad = rows.find((n) => n.state === "failed");
      if (bad) throw new Error(`study ${study}: notification ${bad.destination} failed: ${bad.lastError}`);
      if (rows.length && rows.every((n) => n.state === "delivered")) return Object.fromEntries(rows.map((n) => [n.destination, Date.parse(n.deliveredAt!) - storedAtWall]));
      if (Date.now() > deadline) throw new Error(`study ${study}: notifications not delivered after ${RESULT_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // Warm-up (first inference, codec initialisation, first association to Orthanc): not measured.
  for (const input of ["uncompressed", "jpeg2000"] as const) {
    const w = makeInput(input);
    const wall = Date.now();
    await send(w.path);
    await resultsInOrthanc(w.study);
    await notified(w.study, wall);
  }

  type Notified = Record<string, { p50: number; p95: number }>;
  const scenarios: { input: "uncompressed" | "jpeg2000"; senders: number; latenciesMs: number[]; p50: number; p95: number; wallS: number; timeToNotificationMs: Notified }[] = [];
  for (const input of ["uncompressed", "jpeg2000"] as const) {
    for (const senders of [1, 4]) {
      const inputs = Array.from({ length: STUDIES }, () => makeInput(input));
      const latencies: number[] = [];
      const toNotify: Record<string, number[]> = {};
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: senders }, async (_, k) => {
          for (let i = k; i < inputs.length; i += senders) {
            const storedAt = await send(inputs[i]!.path);
            const storedAtWall = Date.now() - (performance.now() - storedAt);
            const doneAt = await resultsInOrthanc(inputs[i]!.study);
            latencies.push(doneAt - storedAt);
            for (const [dest, ms] of Object.entries(await notified(inputs[i]!.study, storedAtWall))) (toNotify[dest] ??= []).push(ms);
          }
        }),
      );
      scenarios.push({ input, senders, latenciesMs: latencies.map(Math.round), p50: Math.round(quantile(latencies, 0.5)), p95: Math.round(quantile(latencies, 0.95)), wallS: +((performance.now() - t0) / 1000).toFixed(1),
        timeToNotificationMs: Object.fromEntries(Object.entries(toNotify).map(([d, xs]) => [d, { p50: Math.round(quantile(xs, 0.5)), p95: Math.round(quantile(xs, 0.95)) }])) });
    }
  }
  const result = { bench: "e2e", studiesPerScenario: STUDIES, modelInputSize: INPUT_SIZE, pipelineConcurrency: CONCURRENCY, peer: "Orthanc (fixtures/orthanc/orthanc.json)", notificationPeers: { hl7: hl7Peer ? "python-hl7 MLLP receiver (Debian python3-hl7)" : `absent: ${hl7Missing}`, fhir: "test FHIR server (test/notify/fhir-server.ts)", webhook: "node:http receiver" }, scenarios };
  console.log(JSON.stringify(result));
  console.log("");
  const dests = [...new Set(scenarios.flatMap((s) => Object.keys(s.timeToNotificationMs)))].sort();
  console.log(["input          senders   p50 ms   p95 ms   wall s", ...dests.map((d) => `  ${`${d} p50/p95`.padStart(18)}`)].join(""));
  for (const s of scenarios) {
    const cells = dests.map((d) => `  ${`${s.timeToNotificationMs[d]?.p50 ?? "-"}/${s.timeToNotificationMs[d]?.p95 ?? "-"}`.padStart(18)}`);
    console.log(`${s.input.padEnd(14)} ${String(s.senders).padStart(7)}   ${String(s.p50).padStart(6)}   ${String(s.p95).padStart(6)}   ${String(s.wallS).padStart(6)}${cells.join("")}`);
  }
} finally {
  await service?.close();
  await orthanc.stop();
  await hl7Peer?.stop();
  await fhir.close();
  await webhook.close();
  rmSync(work, { recursive: true, force: true });
}
