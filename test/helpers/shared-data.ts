import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The real data beside the checkout (`../shared/data`), never copied into the repo. */
export const SHARED_DATA = resolve(fileURLToPath(new URL("../../../shared/data", import.meta.url)));
export const SHARED_DICOM = join(SHARED_DATA, "dicom");
export const SHARED_NIH = join(SHARED_DATA, "nih");
export const HAS_SHARED_DATA = existsSync(join(SHARED_DATA, "README.md"));

/**
 * Tests over the real files must not pass silently when they are absent: in CI (CI=true) a missing
 * folder fails loudly; elsewhere the test is skipped with a message naming the folder.
 */
export function requireSharedData(): boolean {
  if (HAS_SHARED_DATA) return true;
  if (process.env.CI) throw new Error(`real data folder ${SHARED_DATA} is missing; CI must run beside ../shared`);
  console.warn(`skipping: real data folder ${SHARED_DATA} is missing`);
  return false;
}

/** Chest DICOM files of ../shared/data/dicom that are valid chest studies (test4..6 are gatekeeping cases). */
export const CHEST_DICOM_FILES = ["test1.dcm", "test2.dcm", "test3.dcm", "rsna_cr_jpeg_baseline.dcm", "rsna_cr_jpeg_baseline_fake_monochrome1.dcm"];
export const RG2_FILES = ["RG2_JLSL.dcm", "RG2_JLSN.dcm", "RG2_JPLL.dcm", "RG2_JPLY.dcm", "RG2_J2KI.dcm", "RG2_J2KR.dcm", "RG2_RLE.dcm"];
