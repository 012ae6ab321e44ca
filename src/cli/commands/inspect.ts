import type { Command } from "commander";
import { transferSyntaxName } from "../../dicom/decoders/index.ts";
import { stringValue } from "../../dicom/pixel-module.ts";
import { readDicom } from "../../dicom/read.ts";
import { decodeStoredFrame } from "../../dicom/stored.ts";
import { presentationFromRaster, presentationFromStoredFrame, sniffImageKind } from "../../image/presentation.ts";
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
  const kind = await sniffImageKind(path);
  if (kind !== "dicom") {
    const img = await presentationFromRaster(path, kind);
    return { path, kind, rows: img.height, columns: img.width, steps: img.steps };
  }
  const file = readDicom(path);
  const stored = await decodeStoredFrame(file);
  const { steps } = presentationFromStoredFrame(file, stored);
  const pm = stored.pixelModule;
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
    numberOfFrames: pm.numberOfFrames,
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
