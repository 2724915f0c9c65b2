import type { Logger } from './log.js';

/**
 * Runs a level-triggered sync function: requests coalesce (a burst of triggers is one run),
 * runs never overlap, a failed run is retried with backoff, and a periodic resync repairs
 * drift nobody announced. The shape of kube-proxy's BoundedFrequencyRunner, without the knobs
 * Weft does not use.
 */
export interface RunnerOptions {
  name: string;
  /** Minimum gap between the end of one run and the start of the next. */
  minIntervalMs: number;
  /** Run at least this often, even untriggered. */
  resyncMs: number;
  log: Logger;
}

export class Runner {
  private pending = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private lastEnd = 0;
  private failures = 0;
  private stopped = false;
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  /** Completed runs, for tests and health. */
  runs = 0;
  lastError: string | undefined;

  constructor(
    private readonly sync: () => Promise<void>,
    private readonly opts: RunnerOptions,
  ) {}

  start(): void {
    this.trigger();
  }

  trigger(): void {
    if (this.stopped) return;
    this.pending = true;
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.running || this.stopped) return;
    const wait = Math.max(delayMs, this.lastEnd + this.opts.minIntervalMs - Date.now(), 0);
    if (this.timer) {
      if (delayMs > 0) return; // an earlier run is already scheduled
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.runOnce(), wait);
  }

  private async runOnce(): Promise<void> {
    this.timer = undefined;
    if (this.running || this.stopped) return;
    this.running = true;
    this.pending = false;
    let retryIn = this.opts.resyncMs;
    try {
      await this.sync();
      this.failures = 0;
      this.lastError = undefined;
    } catch (err) {
      this.failures++;
      this.lastError = (err as Error).message;
      retryIn = Math.min(500 * 2 ** (this.failures - 1), this.opts.resyncMs);
      this.opts.log.warn('sync failed; will retry', { controller: this.opts.name, error: this.lastError, retryInMs: retryIn });
    } finally {
      this.running = false;
      this.lastEnd = Date.now();
      this.runs++;
      const due = this.waiters.filter((w) => w.target <= this.runs);
      this.waiters = this.waiters.filter((w) => w.target > this.runs);
      for (const w of due) w.resolve();
    }
    if (this.stopped) return;
    if (this.pending) this.schedule(0);
    else this.schedule(retryIn);
  }

  /** Resolves once a run that started after this call has finished. */
  async flush(timeoutMs = 10_000): Promise<void> {
    const target = this.runs + (this.running ? 2 : 1);
    this.trigger();
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => this.waiters.push({ target, resolve }));
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.opts.name}: no sync within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
