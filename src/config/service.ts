import { readFileSync } from "node:fs";
import { extname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { secretString, urlDestinationName } from "./secrets.ts";
import { worklistConfigSchema } from "./worklist.ts";
import { DEFAULT_MAP_SELECTION, MAP_SELECTIONS } from "../results/pm/selection.ts";
import { notifyConfigSchema } from "./notify.ts";

/**
 * The service configuration (`cxr serve --config <file>`): one JSON or YAML file, validated with
 * zod at start. Every section has defaults, so `{}` (or flags alone) is a working configuration.
 */

/** Storage SOP classes of chest radiographs (PS3.4 B.5). */
export const SOP_CLASS = {
  CR: "1.2.840.10008.5.1.4.1.1.1",
  DX_PRESENTATION: "1.2.840.10008.5.1.4.1.1.1.1",
  DX_PROCESSING: "1.2.840.10008.5.1.4.1.1.1.1.1",
  SECONDARY_CAPTURE: "1.2.840.10008.5.1.4.1.1.7",
  VERIFICATION: "1.2.840.10008.1.1",
} as const;

/**
 * Transfer syntaxes accepted as proposed: the ones the pixel pipeline (src/dicom/decoders) decodes.
 * Never transcoded; an instance is stored in the syntax it was sent in.
 */
export const DECODABLE_TRANSFER_SYNTAXES = [
  "1.2.840.10008.1.2", // Implicit VR Little Endian
  "1.2.840.10008.1.2.1", // Explicit VR Little Endian
  "1.2.840.10008.1.2.2", // Explicit VR Big Endian (retired)
  "1.2.840.10008.1.2.1.99", // Deflated Explicit VR Little Endian
  "1.2.840.10008.1.2.5", // RLE Lossless
  "1.2.840.10008.1.2.4.50", // JPEG Baseline
  "1.2.840.10008.1.2.4.51", // JPEG Extended
  "1.2.840.10008.1.2.4.57", // JPEG Lossless
  "1.2.840.10008.1.2.4.70", // JPEG Lossless SV1
  "1.2.840.10008.1.2.4.80", // JPEG-LS Lossless
  "1.2.840.10008.1.2.4.81", // JPEG-LS Near-Lossless
  "1.2.840.10008.1.2.4.90", // JPEG 2000 Lossless
  "1.2.840.10008.1.2.4.91", // JPEG 2000
];

const aeTitle = z
  .string()
  .min(1)
  .max(16)
  .regex(/^[\x20-\x5b\x5d-\x7e]+$/, "an AE title is 1-16 printable ASCII characters without backslash")
  .refine((s) => s.trim().length > 0, "an AE title cannot be blank");
const port = z.number().int().min(0).max(65535);
const uid = z.string().regex(/^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/, "not a DICOM UID");
/** A destination's name in the store's export records, logs and metric labels (never its URL, which may carry credentials). */
const destinationNameSchema = z.string().regex(/^[A-Za-z0-9._@:-]{1,64}$/, "a destination name is 1-64 of A-Z a-z 0-9 . _ @ : -");

/** Limits on parsing one received header (README, conformance). */
export const parseBudgetSchema = z
  .object({
    /** Sequence nesting levels (a top-level sequence is level 1). */
    maxNestingDepth: z.number().int().min(1).default(32),
    /** Data elements in the header, items and nested elements included. */
    maxElements: z.number().int().min(1).default(50_000),
    /** Bytes before the top-level Pixel Data (or of the whole data set when it has none). */
    maxHeaderBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
    /** Seconds the header parse (off the main thread) may take. */
    timeoutSeconds: z.number().positive().default(10),
  })
  .strict();
export type ParseBudget = z.infer<typeof parseBudgetSchema>;

export const listenerConfigSchema = z
  .object({
    aeTitle: aeTitle.default("CXR_TRIAGE"),
    port: port.default(11112),
    /** Loopback by default: exposing a DICOM node is a deliberate act. */
    bindAddress: z.string().min(1).default("127.0.0.1"),
    /** Calling AE titles allowed to associate; empty = any. */
    allowedCallingAeTitles: z.array(aeTitle).default([]),
    /** Per calling AE title, the peer addresses it must come from (optional host check). */
    allowedHosts: z.record(z.string(), z.array(z.string().min(1))).default({}),
    /** Whether the Called AE Title must equal `aeTitle`. */
    checkCalledAeTitle: z.boolean().default(true),
    acceptedSopClasses: z.array(uid).min(1).default([SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING]),
    acceptedTransferSyntaxes: z.array(uid).min(1).default(DECODABLE_TRANSFER_SYNTAXES),
    maxAssociations: z.number().int().min(1).default(16),
    /** Maximum PDU length we receive (bytes); 0 = unlimited as per PS3.8. */
    maxPduLength: z.number().int().min(0).default(262144),
    /** Seconds an idle association is kept before it is closed. */
    associationTimeoutSeconds: z.number().positive().default(60),
    /** PS3.8 ARTIM: seconds a connection may wait for its A-ASSOCIATE-RQ, or for its close after a release or reject. */
    artimTimeoutSeconds: z.number().positive().default(30),
    /** Open associations one calling AE title may hold (so that one peer cannot take every slot). */
    maxAssociationsPerCallingAe: z.number().int().min(1).default(8),
    /** Open associations one peer address may hold. */
    maxAssociationsPerHost: z.number().int().min(1).default(8),
    /** What one received data set's header may cost to parse; an instance over it is refused and quarantined. */
    parseBudget: parseBudgetSchema.default(() => parseBudgetSchema.parse({})),
    /** DICOM TLS (PS3.15 B.1): PEM files; off unless `cert` and `key` are given. */
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        ca: z.string().min(1).optional(),
        requireClientCertificate: z.boolean().default(false),
      })
      .strict()
      .optional(),
  })
  .strict();

export const intakeConfigSchema = z
  .object({
    /** Seconds without a new instance before a study counts as complete (as Orthanc's StableAge). */
    stableAgeSeconds: z.number().min(0).default(10),
    /** Start a study as soon as its association ends when it holds exactly one image. */
    singleImageImmediately: z.boolean().default(false),
  })
  .strict();

export const selectionConfigSchema = z
  .object({
    modalities: z.array(z.string().min(1)).default(["CR", "DX"]),
    /** Body Part Examined values that count as chest (compared upper-case, trimmed). */
    chestBodyParts: z.array(z.string().min(1)).default(["CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_PA", "CHEST_AP", "CHEST PA", "CHEST AP", "TORAX", "THORAX_PA"]),
    /**
     * What an empty or absent Body Part Examined means: "accept" (many CR/DX devices leave it
     * empty), "reject", or "description" (accept when Study/Series Description mentions the chest).
     */
    emptyBodyPart: z.enum(["accept", "reject", "description"]).default("description"),
    views: z.array(z.string().min(1)).default(["PA", "AP"]),
    /** What an unknown view means after all fallbacks (View Code Sequence, Image Comments, Patient Orientation, descriptions). */
    unknownView: z.enum(["accept", "reject"]).default("accept"),
    /**
     * Image Type (0008,0008) terms that disqualify an image, per position as PS3.3 C.7.6.1.1.2 defines
     * them: value 1 is Pixel Data Characteristics (ORIGINAL/DERIVED: many CR/DX systems write DERIVED
     * on every processed "for presentation" film, so it is no reason by default), value 2 Patient
     * Examination Characteristics (SECONDARY: made after the examination, e.g. screen captures and
     * other systems' results), values 3 and later the modality- or implementation-specific terms
     * that mark non-diagnostic pictures. The old flat list form is refused with this explanation.
     */
    rejectImageTypes: z
      .object({
        value1: z.array(z.string().min(1)).default([]),
        value2: z.array(z.string().min(1)).default(["SECONDARY"]),
        value3AndLater: z.array(z.string().min(1)).default(["LOCALIZER", "SCOUT", "SCREEN SAVE", "REPORT", "CAD", "OVERLAY", "HEATMAP"]),
      }, { error: "rejectImageTypes is per position: {value1: [...], value2: [...], value3AndLater: [...]} (a flat list matched any position and rejected DERIVED\\PRIMARY chest films)" })
      .strict()
      .prefault({}),
    /** Manufacturers whose objects are never input (our own outputs, routed back by a PACS). */
    ownManufacturers: z.array(z.string().min(1)).default(["cxr-triage"]),
  })
  .strict();

export const modelConfigSchema = z
  .object({
    /** Model folder (model.onnx + model-card.json). */
    dir: z.string().min(1).default("./model"),
    provider: z.enum(["cpu", "webgpu", "cuda", "tensorrt"]).default("cpu"),
    threads: z.number().int().min(1).optional(),
  })
  .strict();

export const pipelineConfigSchema = z
  .object({
    /** Studies processed at the same time (decode + inference + results). */
    concurrency: z.number().int().min(1).default(2),
    /** Longest side of the heatmap PNGs for the worklist; larger sources are downscaled. */
    heatmapMaxSize: z.number().int().min(16).default(1024),
    /**
     * Which findings get a DICOM Parametric Map (sent with the SR and SC): "all", "positive" (the findings at
     * or above their operating point, else the most probable one) or "none".
     */
    parametricMaps: z.enum(MAP_SELECTIONS).default(DEFAULT_MAP_SELECTION),
  })
  .strict();

/**
 * The image-content gate (src/gate): checks the presentation image before inference; a study whose
 * image fails is "not analysed" with the reason, never triaged. `dir` defaults to the gate shipped
 * in models/gate (built on the demo trunk, independent of the served model).
 */
export const gateConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    dir: z.string().min(1).optional(),
    minSize: z.number().int().min(1).default(256),
    minGreyLevels: z.number().int().min(2).default(32),
    minStd: z.number().min(0).default(0.02),
  })
  .strict();

/** Drift monitoring (src/drift): recent studies against the model's reference sample. */
export const driftConfigSchema = z
  .object({
    /** Reference sample (`cxr drift-reference`); default <model.dir>/drift-reference.json when it exists. */
    reference: z.string().min(1).optional(),
    window: z.number().int().min(2).default(200),
    /** UTC days kept for the per-day statistics (in memory, like the window). */
    days: z.number().int().min(1).max(366).default(30),
    psiAlert: z.number().positive().default(0.25),
    /** An alert also needs the two-sample KS test to reject at this level (PSI alone is noisy on small windows). */
    ksAlpha: z.number().positive().max(0.5).default(0.001),
    minSamples: z.number().int().min(2).default(30),
  })
  .strict();

export const dimseDestinationSchema = z
  .object({
    kind: z.literal("dimse").default("dimse"),
    /** Default: AET@host:port. */
    name: destinationNameSchema.optional(),
    aeTitle,
    host: z.string().min(1),
    port: port.refine((p) => p > 0, "port must be > 0"),
    /** Our AE title as the calling AE towards this destination (default: the listener's). */
    callingAeTitle: aeTitle.optional(),
    tls: z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
  })
  .strict();

export const stowDestinationSchema = z
  .object({
    kind: z.literal("stow"),
    /** Default: the URL's host and path (no user-info, no query). */
    name: destinationNameSchema.optional(),
    /**
     * DICOMweb root, e.g. http://pacs:8042/dicom-web (STOW-RS is POST <url>/studies). User-info
     * (http://user:password@host/...) is sent as HTTP Basic authentication. A string, { env } or { file }.
     */
    url: secretString(z.url()),
    /** Extra request headers (e.g. an API key); each value a string, { env } or { file }. */
    headers: z.record(z.string(), secretString(z.string())).default({}),
  })
  .strict();

export const destinationSchema = z.union([stowDestinationSchema, dimseDestinationSchema]);

export const exportConfigSchema = z
  .object({
    destinations: z
      .array(destinationSchema)
      .default([])
      .superRefine((list, ctx) => {
        // Export records are kept per name: two destinations under one name would share them.
        const seen = new Set<string>();
        list.forEach((d, i) => {
          const name = destinationName(d);
          if (seen.has(name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `destination name '${name}' is used twice; give each destination its own name` });
          seen.add(name);
        });
      }),
    /** Exponential backoff between attempts: initial × 2^n, capped; attempts go on until they succeed. */
    retryInitialSeconds: z.number().positive().default(1),
    retryMaxSeconds: z.number().positive().default(60),
    timeoutSeconds: z.number().positive().default(30),
  })
  .strict();

/** Where the service keeps its state: embedded SQLite in the data folder (default), or PostgreSQL shared by several nodes. */
export const storeConfigSchema = z
  .object({
    kind: z.enum(["sqlite", "postgres"]).default("sqlite"),
    /** PostgreSQL connection URL, e.g. postgres://cxr:secret@db:5432/cxr (required for postgres): a string, { env } or { file }. */
    url: secretString(z.string().min(1)).optional(),
    /** This node's name in leases, state history and a study's processedBy (default: the host name). */
    nodeId: z.string().min(1).max(128).optional(),
    /** A claimed study whose worker stops renewing its lease for this long goes back to the queue (another node takes it). */
    leaseSeconds: z.number().positive().default(120),
  })
  .strict()
  .refine((s) => s.kind !== "postgres" || !!s.url, { message: "store.url is required when store.kind is postgres", path: ["url"] });

export const serviceConfigSchema = z
  .object({
    /** Folder of the spool, quarantine, results and the SQLite store. */
    dataDir: z.string().min(1).default("./cxr-data"),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    dicom: listenerConfigSchema.default(() => listenerConfigSchema.parse({})),
    intake: intakeConfigSchema.default(() => intakeConfigSchema.parse({})),
    selection: selectionConfigSchema.default(() => selectionConfigSchema.parse({})),
    model: modelConfigSchema.default(() => modelConfigSchema.parse({})),
    pipeline: pipelineConfigSchema.default(() => pipelineConfigSchema.parse({})),
    gate: gateConfigSchema.default(() => gateConfigSchema.parse({})),
    drift: driftConfigSchema.default(() => driftConfigSchema.parse({})),
    export: exportConfigSchema.default(() => exportConfigSchema.parse({})),
    store: storeConfigSchema.default(() => storeConfigSchema.parse({})),
    notify: notifyConfigSchema.default(() => notifyConfigSchema.parse({})),
  })
  .extend(worklistConfigSchema.shape)
  .strict();

export type ServiceConfig = z.infer<typeof serviceConfigSchema>;
export type ListenerConfig = ServiceConfig["dicom"];
export type SelectionConfig = ServiceConfig["selection"];
export type StoreConfig = ServiceConfig["store"];
export type Destination = z.infer<typeof destinationSchema>;
export type DimseDestination = z.infer<typeof dimseDestinationSchema>;
export type StowDestination = z.infer<typeof stowDestinationSchema>;

export class ConfigError extends Error {}

/** The name a destination is known by in the store (export records), logs and metrics: never its URL's secrets. */
export function destinationName(d: Destination): string {
  if (d.name) return d.name;
  if (d.kind === "dimse") return `${d.aeTitle}@${d.host}:${d.port}`;
  return urlDestinationName(d.url);
}

/** Overrides from `cxr serve` flags, applied on top of the file before validation. */
export interface ConfigOverrides {
  port?: number;
  aeTitle?: string;
  bind?: string;
  destinations?: string[];
  dataDir?: string;
  model?: string;
  httpPort?: number;
  apiToken?: string;
}

/** `AET@host:port` (the --destination flag). */
export function parseDestinationSpec(spec: string): { kind: "dimse"; aeTitle: string; host: string; port: number } {
  const m = /^([^@]{1,16})@(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(spec.trim());
  if (!m) throw new ConfigError(`--destination "${spec}": expected <AET>@<host>:<port>, e.g. ORTHANC@127.0.0.1:4242`);
  return { kind: "dimse", aeTitle: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ""), port: Number(m[3]) };
}

/** Reads a JSON or YAML file (by extension; YAML otherwise, which also reads JSON). */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`config ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return extname(path).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid ${extname(path).toLowerCase() === ".json" ? "JSON" : "YAML"} (${(err as Error).message.split("\n")[0]})`);
  }
}

function section(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = obj[key];
  if (v === undefined || v === null) return (obj[key] = {});
  if (typeof v !== "object" || Array.isArray(v)) return (obj[key] = {}); // validation below names it
  return v as Record<string, unknown>;
}

/** Validates a raw configuration (+ overrides); errors name each bad key by its path. */
export function resolveConfig(raw: unknown, overrides: ConfigOverrides = {}, source = "config"): ServiceConfig {
  const obj: Record<string, unknown> = raw === undefined || raw === null ? {} : structuredClone(raw as Record<string, unknown>);
  if (typeof obj !== "object" || Array.isArray(obj)) throw new ConfigError(`${source}: the top level must be a mapping of sections`);
  if (overrides.port !== undefined) section(obj, "dicom").port = overrides.port;
  if (overrides.aeTitle !== undefined) section(obj, "dicom").aeTitle = overrides.aeTitle;
  if (overrides.bind !== undefined) section(obj, "dicom").bindAddress = overrides.bind;
  if (overrides.destinations?.length) {
    const exp = section(obj, "export");
    exp.destinations = overrides.destinations.map(parseDestinationSpec);
  }
  if (overrides.dataDir !== undefined) obj.dataDir = overrides.dataDir;
  if (overrides.model !== undefined) section(obj, "model").dir = overrides.model;
  if (overrides.httpPort !== undefined) section(obj, "api").httpPort = overrides.httpPort;
  if (overrides.apiToken !== undefined) {
    const api = section(obj, "api");
    api.tokens = [...(Array.isArray(api.tokens) ? (api.tokens as unknown[]) : []), overrides.apiToken];
  }
  const parsed = serviceConfigSchema.safeParse(obj);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(top level)"}: ${i.message}`);
    throw new ConfigError(`${source}: invalid configuration — ${lines.join("; ")}`);
  }
  const cfg = parsed.data;
  cfg.dataDir = resolve(cfg.dataDir);
  cfg.model.dir = resolve(cfg.model.dir);
  if (cfg.gate.dir) cfg.gate.dir = resolve(cfg.gate.dir);
  if (cfg.drift.reference) cfg.drift.reference = resolve(cfg.drift.reference);
  return cfg;
}

/** The configuration of `cxr serve`: the file (if any) with the flags on top. */
export function loadServiceConfig(path: string | undefined, overrides: ConfigOverrides = {}): ServiceConfig {
  return resolveConfig(path ? readConfigFile(path) : {}, overrides, path ? `config ${path}` : "flags");
}
