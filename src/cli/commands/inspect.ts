import { open } from "node:fs/promises";
import type { Command } from "commander";
import { transferSyntaxName } from "../../dicom/decoders/index.ts";
import { DicomReadError } from "../../dicom/errors.ts";
import { applyPresentationLuts } from "../../dicom/lut.ts";
import { numberValue, readPixelModule, stringValue } from "../../dicom/pixel-module.ts";
import { readDicom } from "../../dicom/read.ts";
import { decodeStoredFrame } from "../../dicom/stored.ts";
import { loadPresentationImage } from "../../image/presentation.ts";
import { CliError } from "../main.ts";

/** What `cxr inspect` reports; field names are part of the command-line contract. */
export interface InspectReport {
  path: string;
  kind: "dicom" | "png" | "jpeg";
  format?: string;
  transferSyntaxUid?: string;
  transferSyntaxName?: string;
  sopClassUid?: string;
  photometricInterpretation?: string;
  rows: number;
  columns: number;
  samplesPerPixel?: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  pixelRepresentation?: number;
  numberOfFrames?: number;
  /** null when the attribute is absent (the field is always present in the JSON). */
  modality?: string | null;
  bodyPartExamined?: string | null;
  viewPosition?: string | null;
  decoder?: string;
  steps: { modality: string; voi: string; inversion: string };
}

export async function inspect(path: string): Promise<InspectReport> {
  const head = Buffer.alloc(8);
  try {
    const fh = await open(path, "r");
    await fh.read(head, 0, 8, 0).finally(() => fh.close());
  } catch (err) {
    throw new DicomReadError(path, `cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const raster = (head[0] === 0x89 && head.toString("latin1", 1, 4) === "PNG") || (head[0] === 0xff && head[1] === 0xd8);
  if (raster) {
    const img = await loadPresentationImage(path);
    return { path, kind: img.source.kind, rows: img.height, columns: img.width, steps: img.steps };
  }
  const file = readDicom(path);
  const pm = readPixelModule(file);
  const stored = await decodeStoredFrame(file);
  const { steps } = applyPresentationLuts(stored, file.dataset, path);
  if (stored.colour) steps.modality = `${stored.colour}; ${steps.modality}`;
  const ds = file.dataset;
  return {
    path,
    kind: "dicom",
    format: file.format,
    transferSyntaxUid: file.transferSyntaxUid,
    transferSyntaxName: transferSyntaxName(file.transferSyntaxUid),
    sopClassUid: stringValue(ds, "SOPClassUID"),
    photometricInterpretation: pm.photometricInterpretation,
    rows: pm.rows,
    columns: pm.columns,
    samplesPerPixel: pm.samplesPerPixel,
    bitsAllocated: pm.bitsAllocated,
    bitsStored: pm.bitsStored,
    highBit: pm.highBit,
    pixelRepresentation: pm.pixelRepresentation,
    numberOfFrames: numberValue(ds, "NumberOfFrames") ?? 1,
    modality: stringValue(ds, "Modality") ?? null,
    bodyPartExamined: stringValue(ds, "BodyPartExamined") ?? null,
    viewPosition: stringValue(ds, "ViewPosition") ?? null,
    decoder: stored.decoder,
    steps,
  };
}

export function register(program: Command): void {
  program
    .command("inspect")
    .description("decode an image and report its pixel module, identification (modality, body part, view) and the Modality/VOI/inversion steps applied")
    .argument("<input>", "DICOM file (Part 10 or ACR-NEMA, any supported transfer syntax) or PNG/JPEG")
    .option("--json", "print one JSON object instead of text")
    .addHelpText(
      "after",
      "\nJSON fields: transferSyntaxUid, photometricInterpretation, rows, columns, bitsAllocated, bitsStored, highBit,\n" +
        "pixelRepresentation, modality, bodyPartExamined, viewPosition, decoder, steps {modality, voi, inversion}.\n" +
        "Exit code 0 on success; otherwise 1 with a one-line reason.",
    )
    .action(async (input: string, opts: { json?: boolean }) => {
      let report: InspectReport;
      try {
        report = await inspect(input);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      for (const [k, v] of Object.entries(report)) {
        if (v === undefined) continue;
        process.stdout.write(`${k.padEnd(26)} ${typeof v === "object" ? JSON.stringify(v) : String(v)}\n`);
      }
    });
}
