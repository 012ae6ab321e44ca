import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";

/** One read buffer for hashing files: recovery hashes one instance at a time (on the main thread). */
const chunk = Buffer.allocUnsafe(1 << 20);

/**
 * The content hash of a received instance: SHA-256 (hex) of its data set bytes exactly as sent,
 * never of the Part 10 header in front of them. It keys "already processed" and the result UIDs, so
 * the listener (hashing the data set as it copies it to its study folder) and recovery (reading the
 * spool file back) feed these same bytes to this same hash.
 */
export class DatasetHash {
  private readonly hash: Hash = createHash("sha256");

  update(datasetBytes: Buffer): this {
    this.hash.update(datasetBytes);
    return this;
  }

  hex(): string {
    return this.hash.digest("hex");
  }
}

/** The content hash of a spool file whose data set starts at byte `offset` (after its Part 10 header). */
export function datasetSha256(path: string, offset: number): string {
  const fd = openSync(path, "r");
  try {
    const hash = new DatasetHash();
    for (let at = offset; ; ) {
      const n = readSync(fd, chunk, 0, chunk.length, at);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
      at += n;
    }
    return hash.hex();
  } finally {
    closeSync(fd);
  }
}
