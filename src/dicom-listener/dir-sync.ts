import { closeSync, fsync, openSync } from "node:fs";
import { promisify } from "node:util";

const fsyncAsync = promisify(fsync);

/**
 * Opening and closing a folder take microseconds on the main thread; only the fsync, which waits
 * for the file system's journal commit, goes to the thread pool (three thread-pool round trips per
 * folder, one after the other, were a measurable share of an instance's answer time).
 */
async function fsyncDirectory(dir: string): Promise<void> {
  const fd = openSync(dir, "r");
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Group commit of directory entries: `sync(dir)` resolves once an fsync of `dir` that *started after
 * the call* has completed, so every entry created (renamed in) before the call is durable. Callers
 * that arrive while an fsync of the same folder is running share the single next one (instances
 * arriving on concurrent associations for one study pay one folder fsync between them); an fsync
 * already running when a caller arrives never counts for it, as it may have started before its entry.
 */
export class DirectorySync {
  private readonly running = new Map<string, Promise<void>>();
  private readonly next = new Map<string, Promise<void>>();

  sync(dir: string): Promise<void> {
    const queued = this.next.get(dir);
    if (queued) return queued;
    const current = this.running.get(dir);
    if (!current) return this.start(dir);
    const after = current.then(
      () => this.start(dir),
      () => this.start(dir),
    );
    this.next.set(dir, after);
    return after;
  }

  private start(dir: string): Promise<void> {
    this.next.delete(dir);
    const p = fsyncDirectory(dir).finally(() => {
      if (this.running.get(dir) === p) this.running.delete(dir);
    });
    this.running.set(dir, p);
    return p;
  }
}
