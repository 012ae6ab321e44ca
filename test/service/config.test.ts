import { describe, expect, it } from "vitest";
import { redact } from "../../src/config/secrets.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { ConfigError, DECODABLE_TRANSFER_SYNTAXES, destinationName, loadServiceConfig, parseDestinationSpec, resolveConfig, SOP_CLASS } from "../../src/config/service.ts";
import { tempDir } from "../helpers/tmp.ts";

const FIXTURES = new URL("../../fixtures/service/", import.meta.url).pathname;

describe("service configuration", () => {
  it("defaults: loopback listener, CR/DX only (no Secondary Capture), decodable syntaxes, no destinations", () => {
    const c = resolveConfig({});
    expect(c.dicom).toMatchObject({ aeTitle: "CXR_TRIAGE", port: 11112, bindAddress: "127.0.0.1" });
    expect(c.dicom.acceptedSopClasses).toEqual([SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING]);
    expect(c.dicom.acceptedTransferSyntaxes).toEqual(DECODABLE_TRANSFER_SYNTAXES);
    expect(c.export.destinations).toEqual([]);
    expect(c.api.httpPort).toBe(8080);
    expect(c.priority.urgentWeight).toBe(2);
    expect(c.store).toEqual({ kind: "sqlite", leaseSeconds: 120 });
  });

  it("store: PostgreSQL needs a URL; lease and node name are checked", () => {
    expect(resolveConfig({ store: { kind: "postgres", url: "postgres://cxr@db:5432/cxr", nodeId: "node-2", leaseSeconds: 30 } }).store).toEqual({ kind: "postgres", url: "postgres://cxr@db:5432/cxr", nodeId: "node-2", leaseSeconds: 30 });
    expect(() => resolveConfig({ store: { kind: "postgres" } })).toThrow(/store\.url: store\.url is required when store\.kind is postgres/);
    expect(() => resolveConfig({ store: { kind: "mysql" } })).toThrow(/store\.kind: /);
    // the password from the environment, and never shown by /api/config's redaction
    process.env.CXR_TEST_PG_URL = "postgres://cxr:s3cret-pw@db:5432/cxr";
    try {
      const cfg = resolveConfig({ store: { kind: "postgres", url: { env: "CXR_TEST_PG_URL" } } });
      expect(cfg.store.url).toBe("postgres://cxr:s3cret-pw@db:5432/cxr");
      expect(JSON.stringify(redact(cfg))).not.toContain("s3cret-pw");
    } finally {
      delete process.env.CXR_TEST_PG_URL;
    }
    expect(() => resolveConfig({ store: { leaseSeconds: 0 } })).toThrow(/store\.leaseSeconds: /);
  });

  it("reads the example YAML and JSON files of fixtures/service", () => {
    const y = loadServiceConfig(join(FIXTURES, "cxr-serve.yaml"));
    expect(y.export.destinations).toEqual([{ kind: "dimse", aeTitle: "ORTHANC", host: "127.0.0.1", port: 4242 }]);
    expect(y.dicom.allowedHosts).toEqual({ ORTHANC: ["127.0.0.1"] });
    const j = loadServiceConfig(join(FIXTURES, "cxr-serve.json"));
    expect(j.intake.stableAgeSeconds).toBe(5);
    // the demo's template (cxr demo passes it to cxr serve) is a valid service configuration too
    expect(loadServiceConfig(join(FIXTURES, "../demo/cxr-demo.yaml")).intake.singleImageImmediately).toBe(true);
  });

  it("flags override the file", () => {
    const c = loadServiceConfig(join(FIXTURES, "cxr-serve.yaml"), {
      port: 104, aeTitle: "OTHER", bind: "0.0.0.0", destinations: ["PACS@pacs.example:11112", "ARCH@[::1]:104"],
      dataDir: "/tmp/x", model: "/m", httpPort: 9000, apiToken: "a-token-of-sixteen-chars",
    });
    expect(c.dicom).toMatchObject({ port: 104, aeTitle: "OTHER", bindAddress: "0.0.0.0" });
    expect(c.export.destinations).toEqual([parseDestinationSpec("PACS@pacs.example:11112"), { kind: "dimse", aeTitle: "ARCH", host: "::1", port: 104 }]);
    expect(c.dataDir).toBe("/tmp/x");
    expect(c.model.dir).toBe("/m");
    expect(c.api.httpPort).toBe(9000);
    expect(c.api.tokens).toContain("a-token-of-sixteen-chars");
  });

  it("names the bad key in its error", () => {
    expect(() => resolveConfig({ dicom: { port: "eleven" } })).toThrow(/dicom\.port: /);
    expect(() => resolveConfig({ dicom: { aeTitle: "WAY_TOO_LONG_AE_TITLE" } })).toThrow(/dicom\.aeTitle: /);
    expect(() => resolveConfig({ selection: { emptyBodyPart: "maybe" } })).toThrow(/selection\.emptyBodyPart: /);
    expect(() => resolveConfig({ export: { destinations: [{ aeTitle: "X", host: "h" }] } })).toThrow(/export\.destinations\.0/);
    expect(() => resolveConfig({ dicom: { prot: 5 } })).toThrow(/dicom.*prot/);
    expect(() => parseDestinationSpec("nohost")).toThrow(ConfigError);
    const t = tempDir();
    writeFileSync(join(t.dir, "bad.yaml"), "dicom: [unclosed");
    expect(() => loadServiceConfig(join(t.dir, "bad.yaml"))).toThrow(/bad\.yaml: not valid YAML/);
    t.cleanup();
  });

  it("secrets come from the file, an environment variable ({ env }) or a file ({ file }); a missing one is an error naming the key", () => {
    const t = tempDir();
    writeFileSync(join(t.dir, "token"), "a-token-from-a-secret-file\n");
    process.env.CXR_TEST_CONFIG_KEY = "key-from-the-environment";
    try {
      const c = resolveConfig({
        api: { tokens: [{ file: join(t.dir, "token") }, "a-token-of-sixteen-chars"] },
        export: { destinations: [{ kind: "stow", url: "https://pacs.example/dicom-web", headers: { "X-Api-Key": { env: "CXR_TEST_CONFIG_KEY" } } }] },
      });
      expect(c.api.tokens).toEqual(["a-token-from-a-secret-file", "a-token-of-sixteen-chars"]);
      expect(c.export.destinations[0]).toMatchObject({ headers: { "X-Api-Key": "key-from-the-environment" } });
      expect(destinationName(c.export.destinations[0]!)).toBe("pacs.example/dicom-web");
      expect(() => resolveConfig({ api: { pacsDicomWebUrl: { env: "CXR_TEST_UNSET_VARIABLE" } } })).toThrow(/api\.pacsDicomWebUrl: environment variable CXR_TEST_UNSET_VARIABLE is not set/);
      expect(() => resolveConfig({ api: { tokens: [{ file: join(t.dir, "absent") }] } })).toThrow(/api\.tokens\.0: cannot read secret file .*absent \(ENOENT\)/);
      expect(() => resolveConfig({ api: { tokens: [{ file: join(t.dir, "token"), env: "X" }] } })).toThrow(/api\.tokens\.0: expected a string, \{ env: NAME \} or \{ file: PATH \}/);
      // A secret given by reference is validated like one written in the file.
      process.env.CXR_TEST_CONFIG_KEY = "not a url";
      expect(() => resolveConfig({ api: { pacsDicomWebUrl: { env: "CXR_TEST_CONFIG_KEY" } } })).toThrow(/api\.pacsDicomWebUrl: /);
    } finally {
      delete process.env.CXR_TEST_CONFIG_KEY;
      t.cleanup();
    }
  });

  it("destinations are named (default AET@host:port or the URL's host and path), and a name is used once", () => {
    const c = resolveConfig({ export: { destinations: [{ aeTitle: "PACS", host: "h", port: 104 }, { kind: "stow", name: "archive", url: "http://u:p@h/dw?token=x" }] } });
    expect(c.export.destinations.map(destinationName)).toEqual(["PACS@h:104", "archive"]);
    expect(destinationName(resolveConfig({ export: { destinations: [{ kind: "stow", url: "http://u:p@h:8042/dw/?token=x" }] } }).export.destinations[0]!)).toBe("h:8042/dw");
    expect(() => resolveConfig({ export: { destinations: [{ aeTitle: "A", host: "h", port: 1, name: "pacs" }, { kind: "stow", url: "http://h/", name: "pacs" }] } })).toThrow(
      /export\.destinations\.1\.name: destination name 'pacs' is used twice/,
    );
  });

  it("cxr serve prints one clear line for a bad config file", () => {
    const t = tempDir();
    writeFileSync(join(t.dir, "bad.json"), JSON.stringify({ intake: { stableAgeSeconds: -1 } }));
    let out = "";
    try {
      execFileSync(process.execPath, ["bin/cxr.js", "serve", "--config", join(t.dir, "bad.json")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      out = (err as { stderr: string }).stderr;
    }
    t.cleanup();
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(out).toMatch(/^cxr: config .*bad\.json: invalid configuration — intake\.stableAgeSeconds: /);
  });
});
