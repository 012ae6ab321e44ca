import { closeSync, fsync, openSync } from "node:fs";
import { promisify } from "node:util";
import { GroupCommit } from "./group-commit.ts";

const fsyncAsync = promisify(fsync);

/**
 * Opening and closing a folder take microseconds on the main thread; only the fsync, which waits
 * for the file system's journal commit, goes to the thread pool (three thread-pool round trips per
 * folder, one after the other, were a measurable share of an instance's answer time).
 */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fd = openSync(dir, "r");
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Group commit of directory entries, per folder: `sync(dir)` resolves once an fsync of `dir` that
 * started after the call has completed, so every entry created (renamed in) before the call is durable.
 */
export class DirectorySync {
  private readonly folders = new Map<string, GroupCommit>();

  sync(dir: string): Promise<void> {
    let folder = this.folders.get(dir);
    if (!folder) {
      folder = new GroupCommit(() => fsyncDirectory(dir));
      this.folders.set(dir, folder);
    }
    const done = folder.commit();
    // Forget a folder once nothing waits on it (study folders come and go).
    void done.finally(() => {
      if (!folder.busy()) this.folders.delete(dir);
    }).catch(() => undefined);
    return done;
  }
}
