/**
 * Content hash of everything the viewer bundle is built from: its own sources, the label list it
 * imports, and the installed Cornerstone versions (package-lock.json). The build writes it next to
 * the bundle, so "is the bundle stale?" is a hash comparison, independent of file times.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const VIEWER_SOURCE_DIR = fileURLToPath(new URL(".", import.meta.url));
const REPO = resolve(VIEWER_SOURCE_DIR, "../..");
export const BUILD_HASH_FILE = "build-hash.txt";

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === "dist" || name.startsWith("dist.") || name === "node_modules") return [];
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

export function viewerSourceHash(): string {
  const h = createHash("sha256");
  const inputs = [...files(VIEWER_SOURCE_DIR), join(REPO, "src/model/labels.ts"), join(REPO, "package-lock.json")].sort();
  for (const p of inputs) {
    h.update(relative(REPO, p)).update("\0").update(readFileSync(p)).update("\0");
  }
  return h.digest("hex");
}
