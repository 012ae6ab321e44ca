/**
 * A one-line progress bar with rate and ETA on stderr. On a terminal it redraws in place; otherwise
 * (CI logs) it prints at most every 10% so logs stay readable.
 */
export class Progress {
  private n = 0;
  private readonly t0 = performance.now();
  private lastPrinted = -1;
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  tick(k = 1, note = ""): void {
    this.n += k;
    const frac = this.total ? this.n / this.total : 1;
    const decile = Math.floor(frac * 10);
    if (!this.stream.isTTY && decile === this.lastPrinted && this.n < this.total) return;
    this.lastPrinted = decile;
    const elapsed = (performance.now() - this.t0) / 1000;
    const rate = this.n / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - this.n) / rate : Infinity;
    const width = 24;
    const filled = Math.round(frac * width);
    const line = `${this.label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${this.n}/${this.total} ${rate.toFixed(1)}/s ETA ${formatSeconds(eta)}${note ? ` ${note}` : ""}`;
    this.stream.write(this.stream.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write("\n");
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m` : `${m}:${String(sec).padStart(2, "0")}`;
}
