/** `npx tsx src/viewer-extension/build.ts`: builds the viewer page if its build is missing or stale (used by scripts/setup.sh). */
import { ensureViewerBuilt, VIEWER_DIST_DIR } from "./index.ts";

await ensureViewerBuilt({ log: (m) => console.error(`setup: ${m}`) });
console.error(`setup: viewer page in ${VIEWER_DIST_DIR} is current`);
