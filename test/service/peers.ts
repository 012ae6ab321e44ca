import { execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Image storage SOP classes the tests send (CR, DX, SC, CT for the "unsupported" case). */
const SOP_CLASSES = [
  "1.2.840.10008.5.1.4.1.1.1",
  "1.2.840.10008.5.1.4.1.1.1.1",
  "1.2.840.10008.5.1.4.1.1.1.1.1",
  "1.2.840.10008.5.1.4.1.1.7",
  "1.2.840.10008.5.1.4.1.1.2",
];
/** One presentation context per transfer syntax, so a compressed file goes out in its own syntax. */
const TRANSFER_SYNTAXES = [
  "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
  "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
  "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
];

/**
 * A storescu association configuration (dcmtk's storescu.cfg format, used with `-xf <file> Default`):
 * every SOP class above with every transfer syntax as its own presentation context.
 */
export function writeStorescuConfig(dir: string): string {
  const lines = ["[[TransferSyntaxes]]"];
  TRANSFER_SYNTAXES.forEach((ts, i) => lines.push(`[TS${i}]`, `TransferSyntax1 = ${ts}`));
  lines.push("[[PresentationContexts]]", "[AsSent]");
  let n = 1;
  for (const cls of SOP_CLASSES) for (let i = 0; i < TRANSFER_SYNTAXES.length; i++) lines.push(`PresentationContext${n++} = ${cls}\\TS${i}`);
  lines.push("[[Profiles]]", "[Default]", "PresentationContexts = AsSent");
  const path = join(dir, "storescu-as-sent.cfg");
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

/** `log` is storescu's verbose log (stdout + stderr): one "Received Store Response (<status>)" line per file. */
export interface StorescuResult { code: number; log: string }

/** dcmtk storescu sending `files` as they are (compressed stays compressed). Resolves with its exit code. */
export function storescu(opts: { port: number; aec: string; aet?: string; cfg?: string; files: string[]; host?: string; extraArgs?: string[] }): Promise<StorescuResult> {
  return new Promise((resolve) => {
    const args = ["-v", ...(opts.cfg ? ["-xf", opts.cfg, "Default"] : []), ...(opts.extraArgs ?? []), "-aet", opts.aet ?? "MODALITY", "-aec", opts.aec, opts.host ?? "127.0.0.1", String(opts.port), ...opts.files];
    const child = spawn("storescu", args, { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, log }));
  });
}

export async function echoscu(port: number, aec: string, aet = "MODALITY"): Promise<boolean> {
  try {
    await execFileAsync("echoscu", ["-aet", aet, "-aec", aec, "127.0.0.1", String(port)]);
    return true;
  } catch {
    return false;
  }
}
