/**
 * Group commit: `commit()` resolves once a flush that *started after the call* has completed, so
 * everything written before the call is durable. Callers that arrive while a flush runs share the
 * single next one: concurrent associations pay one flush between them, however many instances
 * arrived during the previous flush. A flush already running when a caller arrives never counts for
 * it, as it may have started before the caller's write.
 */
export class GroupCommit {
  private running?: Promise<void>;
  private next?: Promise<void>;

  constructor(private readonly flush: () => Promise<void>) {}

  commit(): Promise<void> {
    if (this.next) return this.next;
    if (!this.running) return this.start();
    const after = this.running.then(
      () => this.start(),
      () => this.start(),
    );
    this.next = after;
    return after;
  }

  /** Whether a flush is running or waiting to run. */
  busy(): boolean {
    return this.running !== undefined || this.next !== undefined;
  }

  private start(): Promise<void> {
    this.next = undefined;
    const p = this.flush().finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }
}
