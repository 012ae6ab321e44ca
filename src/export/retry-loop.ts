/**
 * A background pass that runs again when kicked or when its work is next due (the exporter and the
 * notifier): one pass at a time; a kick during a pass runs another right after it; a failed pass is
 * tried again in a second; stop() waits for the pass in progress. The pass returns when it is next
 * due (epoch ms), or undefined when nothing is waiting.
 */
export class RetryLoop {
  private running = false;
  private timer?: NodeJS.Timeout;
  private busy = false;
  /** A kick arrived during a pass. */
  private dirty = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly pass: () => Promise<number | undefined>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** False once stopped: a long pass checks it to end early. */
  get active(): boolean {
    return this.running;
  }

  start(): void {
    this.running = true;
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.busy) await new Promise<void>((r) => this.idle.push(r));
  }

  /** Look for work now. */
  kick(): void {
    if (!this.running) return;
    if (this.busy) {
      this.dirty = true;
      return;
    }
    this.schedule(Date.now());
  }

  private schedule(at: number): void {
    clearTimeout(this.timer);
    // setTimeout's longest delay is 2^31 - 1 ms; a later due time is looked at again then.
    this.timer = setTimeout(() => void this.run(), Math.min(2 ** 31 - 1, Math.max(0, at - Date.now())));
  }

  private async run(): Promise<void> {
    if (this.busy || !this.running) return;
    this.busy = true;
    this.dirty = false;
    let nextDue: number | undefined;
    try {
      nextDue = await this.pass();
    } catch (err) {
      this.onError(err as Error);
      nextDue = Date.now() + 1000;
    } finally {
      this.busy = false;
      for (const r of this.idle.splice(0)) r();
    }
    if (this.dirty) nextDue = Date.now();
    if (this.running && nextDue !== undefined) this.schedule(nextDue);
  }
}
