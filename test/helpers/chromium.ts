import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium (installed by scripts/setup.sh); playwright-core downloads no browser. */
export const CHROMIUM = "/usr/lib/chromium/chromium";

/** Headless, with nothing that reaches out to the network on its own; `args` add the rendering flags. */
export function launchDebianChromium(args: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", ...args],
  });
}
