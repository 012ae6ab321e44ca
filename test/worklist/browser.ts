import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { launchDebianChromium } from "../helpers/chromium.ts";

/** The worklist page needs no GPU. */
export function launchChromium(): Promise<Browser> {
  return launchDebianChromium(["--disable-gpu"]);
}

/** test-artifacts/ at the repo root (gitignored): screenshots a person looks at after the run. */
export function artifactPath(name: string): string {
  const dir = resolve(fileURLToPath(new URL("../../test-artifacts", import.meta.url)));
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
