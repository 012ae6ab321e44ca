import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";

const PEER_SCRIPT = fileURLToPath(new URL("./hl7_peer.py", import.meta.url));
/** Debian's interpreter: python3-hl7 lives in its dist-packages (a pyenv python3 on PATH would not see it). */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

/** Why the python-hl7 peer cannot run here (undefined: it can). */
export function hl7PeerUnavailable(): string | undefined {
  const r = spawnSync(PYTHON, ["-c", "import hl7.mllp"], { encoding: "utf8" });
  if (r.status !== 0) return `python3-hl7 is not installed (apt-get install python3-hl7; scripts/setup.sh does): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`;
  return undefined;
}

export interface Hl7PeerMessage {
  answer: string;
  controlId: string;
  messageType: string;
  segments: [string, string[]][];
  patientName: string;
  patientFamily: string;
  patientGiven: string;
  charset: string;
  obx: { code: string; system: string; meaning: string; type: string; value: string; flag: string }[];
}

export interface Hl7Peer {
  port: number;
  messages(): Hl7PeerMessage[];
  stop(): Promise<void>;
}

/** The independent MLLP receiver (test/notify/hl7_peer.py): records what python-hl7 parsed, answers `answers` in turn. */
export async function startHl7Peer(opts: { port: number; record: string; answers?: string[]; tls?: { cert: string; key: string } }): Promise<Hl7Peer> {
  const tls = opts.tls ? ["--tls-cert", opts.tls.cert, "--tls-key", opts.tls.key] : [];
  const child: ChildProcess = spawn(PYTHON, [PEER_SCRIPT, "--port", String(opts.port), "--record", opts.record, "--answers", (opts.answers ?? ["AA"]).join(","), ...tls], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("LISTENING")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`hl7 peer exited (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`hl7 peer did not start: ${stderr}`)), 15_000);
  });
  return {
    port: opts.port,
    messages: () => (existsSync(opts.record) ? readFileSync(opts.record, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Hl7PeerMessage) : []),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** The fields of the first segment named `name` (HL7 numbering: index 0 = field 1, MSH: index 0 = MSH-1). */
export function seg(m: Hl7PeerMessage, name: string, n = 0): string[] {
  const all = m.segments.filter(([s]) => s === name);
  if (!all[n]) throw new Error(`no ${name} segment #${n + 1} in ${m.controlId}`);
  return all[n]![1];
}

/** A small HTTP receiver for webhooks and the FHIR test server: `handle` answers each request. */
export async function startHttp(handle: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, Buffer.concat(chunks).toString("utf8"), res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, server, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
