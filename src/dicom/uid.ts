import { createHash, randomUUID } from "node:crypto";

/**
 * UIDs under the "2.25" root (PS3.5 B.2): a UUID's 128 bits as one decimal integer. Needs no
 * registered organisation root and is unique by construction.
 */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, "")}`).toString(10)}`;
}

/**
 * A deterministic UID from its inputs (e.g. source SOP Instance UIDs + model Device UID + object
 * kind): the same inputs always give the same UID, so re-processing an unchanged study re-creates
 * identical result UIDs instead of duplicates. 128 bits of SHA-256 under "2.25" (max 39 digits,
 * so the UID stays within the 64-character limit).
 */
export function deriveUid(...parts: string[]): string {
  const h = createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 32);
  return `2.25.${BigInt(`0x${h}`).toString(10)}`;
}

const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && UID_PATTERN.test(uid);
}
