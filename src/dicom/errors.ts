/**
 * Every failure to read or decode a DICOM (or PNG/JPEG) input is a DicomReadError: it names the
 * file, the tag or transfer syntax involved when there is one, and why, in one line, so the CLI,
 * the pipeline and the worklist can show it as the study's failure reason.
 */
export class DicomReadError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly detail: { tag?: string; transferSyntaxUid?: string } = {},
  ) {
    const where = [detail.tag ? `tag ${detail.tag}` : "", detail.transferSyntaxUid ? `transfer syntax ${detail.transferSyntaxUid}` : ""]
      .filter(Boolean)
      .join(", ");
    super(`${path}: ${where ? `${where}: ` : ""}${reason}`);
    this.name = "DicomReadError";
  }
}
