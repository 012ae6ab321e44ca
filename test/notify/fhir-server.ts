import type { ServerResponse } from "node:http";
import { checkTransactionBundle } from "./fhir-r4.ts";
import { startHttp } from "./peers.ts";

type Json = Record<string, unknown>;

/**
 * A small FHIR R4 server for the tests: transaction Bundles at the base URL, processed as R4 says
 * (http.html#trules): conditional creates (ifNoneExist: no match → create, 201; one match → 200
 * with the existing resource, nothing created; several → 412), then every urn:uuid reference
 * rewritten to the resource it now stands for. Bundles that fail the R4 structural check are
 * refused with 400 and an OperationOutcome. `failNext` answers the next requests with that status.
 */
export async function startFhirServer() {
  const resources = new Map<string, Json[]>();
  const received: Json[] = [];
  const failNext: number[] = [];
  let nextId = 1;
  const send = (res: ServerResponse, status: number, body: Json) => res.writeHead(status, { "content-type": "application/fhir+json; charset=utf-8" }).end(JSON.stringify(body));
  const outcome = (text: string) => ({ resourceType: "OperationOutcome", issue: [{ severity: "error", code: "invalid", diagnostics: text }] });

  const http = await startHttp((req, body, res) => {
    if (req.method !== "POST" || (req.url !== "/fhir" && req.url !== "/fhir/")) return send(res, 404, outcome(`${req.method} ${req.url}: not supported`));
    const fail = failNext.shift();
    if (fail) return send(res, fail, outcome("failing as the test asked"));
    if (!/^application\/fhir\+json/.test(req.headers["content-type"] ?? "")) return send(res, 415, outcome("expected application/fhir+json"));
    let bundle: Json;
    try {
      bundle = JSON.parse(body) as Json;
    } catch {
      return send(res, 400, outcome("not JSON"));
    }
    received.push(bundle);
    const errors = checkTransactionBundle(bundle);
    if (errors.length) return send(res, 400, outcome(errors.join("; ")));
    const mapped = new Map<string, string>();
    const responses: Json[] = [];
    const created: Json[] = [];
    for (const e of bundle.entry as { fullUrl: string; resource: Json; request: { url: string; ifNoneExist?: string } }[]) {
      const type = e.request.url;
      const matches = e.request.ifNoneExist ? search(type, e.request.ifNoneExist) : [];
      if (matches.length > 1) return send(res, 412, outcome(`${type}?${e.request.ifNoneExist}: ${matches.length} matches`));
      if (matches.length === 1) {
        mapped.set(e.fullUrl, `${type}/${String(matches[0]!.id)}`);
        responses.push({ response: { status: "200 OK", location: `${type}/${String(matches[0]!.id)}/_history/1` } });
        continue;
      }
      const resource = { ...structuredClone(e.resource), id: String(nextId++) };
      created.push(resource);
      mapped.set(e.fullUrl, `${type}/${resource.id}`);
      responses.push({ response: { status: "201 Created", location: `${type}/${resource.id}/_history/1` } });
    }
    // Pending creates are only stored once the whole transaction succeeded.
    for (const r of created) {
      rewriteReferences(r, mapped);
      const list = resources.get(String(r.resourceType)) ?? [];
      list.push(r);
      resources.set(String(r.resourceType), list);
    }
    send(res, 200, { resourceType: "Bundle", type: "transaction-response", entry: responses });
  });

  /** `identifier=system|value` (URL-encoded), the only search this server knows. */
  function search(type: string, query: string): Json[] {
    const m = /^identifier=(.*)$/.exec(query);
    if (!m) throw new Error(`unsupported ifNoneExist ${query}`);
    const [system, value] = decodeURIComponent(m[1]!).split(/\|(.*)/s);
    return (resources.get(type) ?? []).filter((r) => ((r.identifier as { system?: string; value?: string }[] | undefined) ?? []).some((i) => i.system === system && i.value === value));
  }

  return {
    url: `${http.url}/fhir`,
    resources: (type: string) => resources.get(type) ?? [],
    received,
    failNext,
    close: http.close,
  };
}

function rewriteReferences(node: unknown, mapped: Map<string, string>): void {
  if (Array.isArray(node)) return node.forEach((n) => rewriteReferences(n, mapped));
  if (!node || typeof node !== "object") return;
  const o = node as Json;
  if (typeof o.reference === "string" && mapped.has(o.reference)) o.reference = mapped.get(o.reference);
  for (const v of Object.values(o)) rewriteReferences(v, mapped);
}
