import { createRequire } from "node:module";

/**
 * dcmjs ships no type declarations; this is the one typed entry to it for the whole project, so
 * `strict` holds everywhere. Only the members we use are declared. Loaded through its CommonJS build.
 */
export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
  _rawValue?: unknown;
}
export type DcmjsDict = Record<string, DcmjsElement>;

export interface DcmjsDicomDict {
  meta: DcmjsDict;
  dict: DcmjsDict;
  write(options?: Record<string, unknown>): ArrayBuffer;
}

export interface DcmjsReadOptions {
  ignoreErrors?: boolean;
  untilTag?: string | null;
  includeUntilTagValue?: boolean;
  noCopy?: boolean;
  forceStoreRaw?: boolean;
}

interface DcmjsLogger {
  setLevel(level: "trace" | "debug" | "info" | "warn" | "error" | "silent"): void;
}

export interface Dcmjs {
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: DcmjsReadOptions): DcmjsDicomDict };
    DicomDict: new (meta: DcmjsDict) => DcmjsDicomDict;
    DicomMetaDictionary: {
      naturalizeDataset(dict: DcmjsDict): Record<string, unknown>;
      denaturalizeDataset(dataset: Record<string, unknown>): DcmjsDict;
      uid(): string;
      date(): string;
      time(): string;
    };
  };
  log: DcmjsLogger & { getLogger(name: string): DcmjsLogger };
}

const require = createRequire(import.meta.url);
export const dcmjs = require("dcmjs") as Dcmjs;
// dcmjs logs header quirks it repairs while reading (a 4-byte AS, an implicit-VR "ox" Pixel Data)
// on stderr at error level for every file; what it cannot repair it throws, and we report that.
dcmjs.log.setLevel("silent");
dcmjs.log.getLogger("validation.dcmjs").setLevel("silent");
