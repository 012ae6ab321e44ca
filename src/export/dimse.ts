import { readFileSync } from "node:fs";
import dimse from "dcmjs-dimse";
import { redact, withoutCredentials } from "../config/secrets.ts";
import type { DimseDestination, StowDestination } from "../config/service.ts";

const { Client } = dimse;
const { CStoreRequest } = dimse.requests;
const { Status } = dimse.constants;

/** The outcome of sending one object: success only on a Success (0000) or Warning (Bxxx) status. */
export interface SendOutcome {
  path: string;
  ok: boolean;
  /** DIMSE status or HTTP status / failure text. */
  detail: string;
}

/** DICOM status families that mean "stored" (PS3.4 B.2.3): Success and the Warning codes Bxxx. */
function isStored(status: number): boolean {
  return status === Status.Success || (status & 0xf000) === 0xb000;
}

/**
 * C-STORE SCU: sends `paths` to one destination in one association (dcmjs-dimse Client). Each file
 * gets its own outcome; a file without a response (association refused, connection lost) is a
 * failure, never assumed stored.
 */
export function cStoreFiles(dest: DimseDestination, callingAeTitle: string, paths: string[], timeoutSeconds: number): Promise<SendOutcome[]> {
  // Read before the client and its timer exist: an unreadable TLS file fails the call without leaving either behind.
  const tls = dest.tls
    ? {
        ca: dest.tls.ca ? readFileSync(dest.tls.ca) : undefined,
        cert: dest.tls.cert ? readFileSync(dest.tls.cert) : undefined,
        key: dest.tls.key ? readFileSync(dest.tls.key) : undefined,
      }
    : undefined;
  return new Promise((resolve) => {
    const statuses = new Map<string, number>();
    let failure = "";
    const client = new Client();
    for (const path of paths) {
      const request = new CStoreRequest(path);
      request.on("response", (response: { getStatus(): number }) => statuses.set(path, response.getStatus()));
      client.addRequest(request);
    }
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(
        paths.map((path) => {
          const status = statuses.get(path);
          if (status === undefined) return { path, ok: false, detail: failure || "no C-STORE response" };
          return { path, ok: isStored(status), detail: `status 0x${status.toString(16).padStart(4, "0")}` };
        }),
      );
    };
    const timer = setTimeout(() => {
      failure ||= `no answer within ${timeoutSeconds} s`;
      try {
        client.abort();
      } catch {
        /* not connected */
      }
      finish();
    }, timeoutSeconds * 1000 * Math.max(1, Math.ceil(paths.length / 4)));
    client.on("associationRejected", (r: { result: number; source: number; reason: number }) => (failure = `association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`));
    client.on("networkError", (e: Error) => {
      failure ||= `network error: ${e.message}`;
      finish();
    });
    client.on("closed", finish);
    client.send(dest.host, dest.port, callingAeTitle, dest.aeTitle, {
      connectTimeout: timeoutSeconds * 1000,
      associationTimeout: timeoutSeconds * 1000,
      pduTimeout: timeoutSeconds * 1000,
      ...(tls ? { securityOptions: tls } : {}),
    });
  });
}

/**
 * DICOMweb STOW-RS (PS3.18 10.5): POST <url>/studies, multipart/related; type="application/dicom",
 * one part per file. Success is HTTP 200 without a failed SOP in the response; 202 (some failed)
 * marks the files named in FailedSOPSequence as failed — unknown, hence all, when it is not parseable.
 */
export async function stowFiles(dest: StowDestination, paths: string[], timeoutSeconds: number, sopInstanceUids: string[]): Promise<SendOutcome[]> {
  const boundary = `cxr-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const parts: Buffer[] = [];
  for (const path of paths) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, "latin1"), readFileSync(path), Buffer.from("\r\n", "latin1"));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`, "latin1"));
  // Below the root's path, keeping its query (a token some gateways expect there).
  const root = new URL(dest.url);
  root.pathname = `${root.pathname.replace(/\/+$/, "")}/studies`;
  const target = withoutCredentials(root.href);
  const url = String(redact(target.url));
  let res: Response;
  let text: string;
  try {
    res = await fetch(target.url, {
      method: "POST",
      headers: { ...target.headers, ...dest.headers, "Content-Type": `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: "application/dicom+json" },
      body: new Uint8Array(Buffer.concat(parts)),
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
    text = await res.text();
  } catch (err) {
    return paths.map((path) => ({ path, ok: false, detail: `STOW-RS ${url}: ${(err as Error).message}` }));
  }
  if (res.status === 200) return paths.map((path) => ({ path, ok: true, detail: "HTTP 200" }));
  let failed = new Set(sopInstanceUids);
  if (res.status === 202) {
    try {
      const body = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: string[] }>[] }>;
      const items = body["00081198"]?.Value ?? [];
      failed = new Set(items.map((i) => i["00081155"]?.Value?.[0]).filter((u): u is string => !!u));
    } catch {
      /* keep all as failed */
    }
  }
  return paths.map((path, k) => ({ path, ok: !failed.has(sopInstanceUids[k]!), detail: `HTTP ${res.status} ${text.slice(0, 120)}` }));
}
