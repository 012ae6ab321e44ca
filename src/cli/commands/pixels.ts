import type { Command } from "commander";
import { writePng16 } from "../../image/png16.ts";
import { loadPresentationImage } from "../../image/presentation.ts";
import { CliError } from "../main.ts";

export function register(program: Command): void {
  program
    .command("pixels")
    .description(
      "write the presentation-ready grayscale image (Modality LUT → VOI → MONOCHROME1/INVERSE inversion) as a 16-bit grayscale PNG at native resolution; 0..65535 is the VOI output range after inversion",
    )
    .argument("<input>", "DICOM file (Part 10 or ACR-NEMA, any supported transfer syntax) or PNG/JPEG")
    .requiredOption("--out <file.png>", "PNG file to write")
    .addHelpText("after", "\nExit code 0 on success; otherwise 1 with a one-line reason naming the file, tag or transfer syntax.")
    .action(async (input: string, opts: { out: string }) => {
      let img;
      try {
        img = await loadPresentationImage(input);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      try {
        await writePng16(img, opts.out);
      } catch (err) {
        throw new CliError(`${opts.out}: cannot write PNG (${(err as Error).message})`);
      }
    });
}
