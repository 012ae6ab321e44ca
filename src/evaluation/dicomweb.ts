/**
 * The few DICOMweb calls an audit needs (PS3.18): QIDO-RS searches (application/dicom+json) and
 * WADO-RS metadata (application/dicom+json) and instance retrieval (multipart/related; type="application/dicom").
 */
export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

export class DicomWebError extends Error {}

export function tagString(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === "string" ? v : v === undefined ? undefined : String(v);
}

export class DicomWebClient {
  constructor(readonly base: string) {
    this.base = base.replace(/\/+$/, "");
  }

  /** GET with the service name, URL and reason in every failure (network or non-2xx answer). */
  private async get(service: "QIDO-RS" | "WADO-RS", url: string, accept: string): Promise<Response> {
    let r: Response;
    try {
      r = await fetch(url, { headers: { Accept: accept } });
    } catch (err) {
      throw new DicomWebError(`${service} ${url}: ${(err as Error).message}`);
    }
    if (!r.ok) throw new DicomWebError(`${service} ${url}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    return r;
  }

  async qido(path: string, query: Record<string, string> = {}): Promise<DicomJson[]> {
    const qs = new URLSearchParams(query).toString();
    const url = `${this.base}${path}${qs ? `?${qs}` : ""}`;
    const r = await this.get("QIDO-RS", url, "application/dicom+json");
    if (r.status === 204) return [];
    const text = await r.text();
    return text ? (JSON.parse(text) as DicomJson[]) : [];
  }

  /**
   * The headers of every instance of a study or of one series (WADO-RS metadata): all attributes but
   * bulk data, sequences included, unlike QIDO-RS whose instance-level answers hold only the requested fields.
   */
  async metadata(study: string, series?: string): Promise<DicomJson[]> {
    const url = `${this.base}/studies/${study}${series ? `/series/${series}` : ""}/metadata`;
    const r = await this.get("WADO-RS", url, "application/dicom+json");
    const body = JSON.parse(await r.text()) as unknown;
    if (!Array.isArray(body)) throw new DicomWebError(`WADO-RS ${url}: expected a JSON array of instances`);
    return body as DicomJson[];
  }

  /** One instance as Part 10 bytes. */
  async retrieveInstance(study: string, series: string, sop: string): Promise<Buffer> {
    const url = `${this.base}/studies/${study}/series/${series}/instances/${sop}`;
    const r = await this.get("WADO-RS", url, 'multipart/related; type="application/dicom"; transfer-syntax=*');
    const parts = parseMultipart(Buffer.from(await r.arrayBuffer()), r.headers.get("content-type") ?? "", url);
    if (parts.length !== 1) throw new DicomWebError(`WADO-RS ${url}: expected 1 part, got ${parts.length}`);
    return parts[0]!;
  }
}

/** Bodies of a multipart/related response (RFC 2046), boundary from the Content-Type header. */
export function parseMultipart(body: Buffer, contentType: string, where: string): Buffer[] {
  const m = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!m) throw new DicomWebError(`${where}: response is not multipart (Content-Type "${contentType}")`);
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: Buffer[] = [];
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const afterDelim = pos + delimiter.length;
    if (body.subarray(afterDelim, afterDelim + 2).toString() === "--") break; // close delimiter
    const headerEnd = body.indexOf("\r\n\r\n", afterDelim);
    if (headerEnd < 0) throw new DicomWebError(`${where}: malformed multipart part (no header end)`);
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), headerEnd + 4);
    if (next < 0) throw new DicomWebError(`${where}: malformed multipart body (no closing boundary)`);
    parts.push(body.subarray(headerEnd + 4, next));
    pos = next + 2;
  }
  return parts;
}
