/**
 * A progress bar for long work on stderr: redrawn in place on a terminal, a line every tenth of the
 * way otherwise (logs, CI), so progress is visible either way and the output stays readable.
 */
import { formatSeconds } from '../format.js';

export class ProgressBar {
  private readonly started = performance.now();
  private lastDecile = -1;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(done: number, fields: Record<string, string> = {}): void {
    if (this.quiet) return;
    const fraction = this.total > 0 ? done / this.total : 1;
    const seconds = (performance.now() - this.started) / 1000;
    const eta = fraction > 0 ? (seconds / fraction) * (1 - fraction) : NaN;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k} ${v}`)
      .join('  ');
    const line = `${this.label} ${bar} ${done}/${this.total}  ${extra}  ${formatSeconds(seconds)}${done < this.total ? ` eta ${formatSeconds(eta)}` : ''}`;
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${line}`);
      if (done >= this.total) this.stream.write('\n');
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > this.lastDecile || done >= this.total) {
      this.lastDecile = decile;
      this.stream.write(line + '\n');
    }
  }
}
