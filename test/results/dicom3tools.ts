import { spawnSync } from "node:child_process";

/** dciodvfy (dicom3tools) on one file: its Error and Warning lines (it reports on stderr). */
export function dciodvfy(path: string): { errors: string[]; warnings: string[]; output: string } {
  const run = spawnSync("dciodvfy", [path], { encoding: "utf8", timeout: 60_000 });
  if (run.error) throw new Error(`dciodvfy could not run on ${path}: ${run.error.message}`);
  const output = `${run.stdout}${run.stderr}`;
  // dciodvfy sometimes runs two messages together on one line ("...SOP ClassWarning - ..."): split before each label.
  const lines = output.replace(/(Error|Warning) - /g, "\n$1 - ").split("\n").map((l) => l.trim()).filter(Boolean);
  return { errors: lines.filter((l) => l.startsWith("Error")), warnings: lines.filter((l) => l.startsWith("Warning")), output };
}

/**
 * The dciodvfy warnings our outputs may carry, each explained in the README's DICOM conformance section. A warning not
 * on this list fails the tests, so the conformance section cannot fall behind the files.
 */
export const ACCEPTED_WARNINGS: { pattern: RegExp; why: string }[] = [
  {
    pattern: /^Warning - Missing attribute or value that would be needed to build DICOMDIR - (Study Date|Study Time|Study ID|Accession Number)$/,
    why: "Type 2 study attributes the source lacks or has invalid are written empty (PS3.5 7.4); a DICOMDIR would want values",
  },
  {
    pattern: /^Warning - Value dubious for this VR - \(0x0010,0x0010\) PN Patient's Name {2}PN \[1\] = <[^>]*> - Retired Person Name form$/,
    why: "a valid PN copied from the source as is (no ^ component separators); rewriting a patient's name is not ours to do",
  },
  {
    pattern: /^Warning - is only permitted to be empty when actually unknown; should be absent \(not empty\) if an unpaired body part, and have a value if a paired body part - attribute <Laterality>$/,
    why: "SC or Parametric Map of a source whose body part is not CHEST (test4: RIBCAGE, RG2: HIP): body part left out, Laterality empty because it is unknown",
  },
  {
    pattern: /^Warning - Attribute is not present in standard DICOM IOD - \(0x0018,0x1002\) UI Device UID\s*$/,
    why: "Device UID inside the Contributing Equipment Sequence names the AI model as IHE AIR asks; dicom3tools 2022 does not list it there",
  },
  {
    pattern: /^Warning - Dicom dataset contains attributes not present in standard DICOM IOD - this is a Standard Extended SOP Class\s*$/,
    why: "the summary line that follows the Device UID warning",
  },
];

export function unexplainedWarnings(warnings: string[]): string[] {
  return warnings.filter((w) => !ACCEPTED_WARNINGS.some((a) => a.pattern.test(w)));
}

/**
 * dsrdump (dcmtk) on an SR, strict (no options that tolerate invalid items or relationships), verbose.
 * `problems` are its error and warning lines, except dcmtk's note that its VR checker cannot check
 * UTF-8 text (ISO_IR 192), which says nothing about the document.
 */
export function dsrdump(path: string): { status: number | null; stdout: string; stderr: string; problems: string[] } {
  const run = spawnSync("dsrdump", ["--verbose", path], { encoding: "utf8", timeout: 60_000 });
  if (run.error) throw new Error(`dsrdump could not run on ${path}: ${run.error.message}`);
  const problems = run.stderr.split("\n").filter((l) => /^[EWF]: /.test(l) && !/VR checker does not support this Specific Character Set: ISO_IR 192/.test(l));
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, problems };
}
