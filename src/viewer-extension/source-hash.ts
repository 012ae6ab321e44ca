/**
 * Content hash of everything the viewer bundle is built from: its browser sources (lib/, page/), the
 * vite configuration, the label list and the Parametric Map value mapping it imports, and the installed Cornerstone versions
 * (package-lock.json). The Node side (index.ts, build.ts, this file) is not in the bundle, so editing it
 * does not force a rebuild. The build writes the hash next to the bundle, so "is the bundle stale?" is
 * a hash comparison, independent of file times.
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
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

export function viewerSourceHash(): string {
  const h = createHash("sha256");
  const inputs = [
    ...files(join(VIEWER_SOURCE_DIR, "lib")),
    ...files(join(VIEWER_SOURCE_DIR, "page")),
    join(VIEWER_SOURCE_DIR, "vite.config.ts"),
    join(REPO, "src/model/labels.ts"),
    join(REPO, "src/results/pm/values.ts"),
    join(REPO, "package-lock.json"),
  ].sort();
  for (const p of inputs) {
    h.update(relative(REPO, p)).update("\0").update(readFileSync(p)).update("\0");
  }
  return h.digest("hex");
}
