import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium, headless, with nothing that reaches out to the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/lib/chromium/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** test-artifacts/ at the repo root (gitignored): screenshots a person looks at after the run. */
export function artifactPath(name: string): string {
  const dir = resolve(fileURLToPath(new URL("../../test-artifacts", import.meta.url)));
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
