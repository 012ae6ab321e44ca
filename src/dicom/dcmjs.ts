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
  log: { setLevel(level: string): void; getLevel(): number };
}

const require = createRequire(import.meta.url);
export const dcmjs = require("dcmjs") as Dcmjs;
// dcmjs logs recoverable header quirks it already repairs (e.g. a 4-byte AS) as warnings on every
// read; errors it cannot repair reach us as exceptions, so only its errors stay visible.
dcmjs.log.setLevel("error");
