import { createHmac, timingSafeEqual } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSqliteStore, type Store } from "../../src/store/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { ACCESSION, config, notifier, PATIENT, STUDY, studyWithResults, waitFor } from "./fixture.ts";
import { startHttp } from "./peers.ts";

const SECRET = "a-shared-secret-of-the-pager-integration";

/** The receiver's side, written from the contract alone (HMAC-SHA256 of the raw body, hex, "sha256=" prefix). */
function verifies(body: string, header: string | undefined, secret: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(Buffer.from(body, "utf8")).digest("hex")}`);
  const got = Buffer.from(header ?? "");
  return got.length === expected.length && timingSafeEqual(got, expected);
}

describe("webhooks for urgent studies", () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Store;
  let hook: Awaited<ReturnType<typeof startHttp>>;
  const got: { body: string; signature?: string }[] = [];
  const statuses: number[] = [];
  beforeEach(async () => {
    tmp = tempDir("cxr-hook-");
    store = openSqliteStore(join(tmp.dir, "store.sqlite"), { nodeId: "n1" });
    got.length = 0;
    hook = await startHttp((req, body, res) => {
      got.push({ body, signature: req.headers["x-cxr-signature"] as string | undefined });
      res.writeHead(statuses.shift() ?? 204).end();
    });
  });
  afterEach(async () => {
    await hook.close();
    await store.close();
    tmp.cleanup();
  });
  const cfg = (over: Record<string, unknown> = {}) =>
    config({ retryInitialSeconds: 0.1, retryMaxSeconds: 0.3, timeoutSeconds: 3, destinations: [{ kind: "webhook", name: "pager", url: `${hook.url}/hook`, secret: SECRET, ...over }] });
  const outbox = async () => (await store.notifications(STUDY))[0];

  it("signed with the shared secret; no patient name, ID or accession number in the body; retried after a 500", async () => {
    const c = cfg();
    statuses.push(500);
    await studyWithResults(store, c);
    const n = notifier(store, c);
    n.start();
    await waitFor("delivery", async () => (await outbox())?.state === "delivered");
    await n.stop();
    expect(got).toHaveLength(2);
    for (const g of got) {
      expect(verifies(g.body, g.signature, SECRET)).toBe(true);
      expect(verifies(g.body, g.signature, `${SECRET}x`)).toBe(false);
    }
    const body = JSON.parse(got[1]!.body);
    expect(body).toMatchObject({ event: "cxr-triage.study.triaged", studyInstanceUid: STUDY, priority: "urgent", findings: [{ label: "Pneumothorax", probability: 0.91, operatingPoint: 0.42 }] });
    expect(got[0]!.body).toBe(got[1]!.body); // the same delivery, by its id
    for (const phi of [PATIENT.id, "Müller", "Jörg", ACCESSION]) expect(got[1]!.body).not.toContain(phi);
    expect(await outbox()).toMatchObject({ attempts: 2, ack: "HTTP 204" });
  });

  it("patient identifiers only when includePhi; the secret from a file or the environment", async () => {
    const file = join(tmp.dir, "secret");
    writeFileSync(file, `${SECRET}\n`);
    const c = cfg({ secret: { file }, includePhi: true });
    await studyWithResults(store, c);
    const n = notifier(store, c);
    n.start();
    await waitFor("delivery", async () => (await outbox())?.state === "delivered");
    await n.stop();
    expect(verifies(got[0]!.body, got[0]!.signature, SECRET)).toBe(true);
    expect(JSON.parse(got[0]!.body)).toMatchObject({ patient: { name: PATIENT.name, id: PATIENT.id }, accessionNumber: ACCESSION });
    process.env.CXR_TEST_HOOK_SECRET = "another-secret-from-the-environment";
    const e = cfg({ secret: { env: "CXR_TEST_HOOK_SECRET" } });
    await studyWithResults(store, e, { key: "key-2", sop: 2 });
    const m = notifier(store, e);
    m.start();
    await waitFor("delivery", async () => (await outbox())?.resultsKey === "key-2" && (await outbox())?.state === "delivered");
    await m.stop();
    expect(verifies(got[1]!.body, got[1]!.signature, "another-secret-from-the-environment")).toBe(true);
    expect(got[1]!.body).not.toContain(PATIENT.id);
  });

  it("a study that is not urgent gets no webhook (the outbox holds none)", async () => {
    const c = cfg();
    await studyWithResults(store, c, { pneumothorax: 0.1 });
    expect(await store.notifications(STUDY)).toEqual([]);
  });

  it("configuration: exactly one secret source", () => {
    expect(() => config({ destinations: [{ kind: "webhook", url: "http://x/h" }] })).toThrow(/notify\.destinations\.0\.secret/);
  });
});
