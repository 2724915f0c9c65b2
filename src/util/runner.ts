import type { Logger } from './log.js';

/**
 * Runs a level-triggered sync function: requests coalesce (a burst of triggers is one run),
 * runs never overlap, a failed run is retried with backoff — which triggers and flushes honour
 * too, so callers waiting on a failing sync cannot make it spin — and a periodic resync repairs
 * drift nobody announced. A repeated failure is logged once per LOG_EVERY_MS, with its count.
 * The shape of kube-proxy's BoundedFrequencyRunner, without the knobs Weft does not use.
 */
const LOG_EVERY_MS = 30_000;
const FIRST_RETRY_MS = 500;
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
  /** After a failure, no run starts before this (ms timestamp). */
  private notBefore = 0;
  private lastLogged = 0;
  private failuresSinceLog = 0;
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
    const now = Date.now();
    const wait = Math.max(delayMs, this.lastEnd + this.opts.minIntervalMs - now, this.notBefore - now, 0);
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
      if (this.failures > 0) this.opts.log.info('sync recovered', { controller: this.opts.name, afterFailures: this.failures });
      this.failures = 0;
      this.notBefore = 0;
      this.lastError = undefined;
    } catch (err) {
      this.failures++;
      this.failuresSinceLog++;
      this.lastError = (err as Error).message;
      retryIn = Math.min(FIRST_RETRY_MS * 2 ** (this.failures - 1), this.opts.resyncMs);
      this.notBefore = Date.now() + retryIn;
      if (this.failures === 1 || Date.now() - this.lastLogged >= LOG_EVERY_MS) {
        this.opts.log.warn('sync failed; will retry', { controller: this.opts.name, error: this.lastError, retryInMs: retryIn, failures: this.failuresSinceLog });
        this.lastLogged = Date.now();
        this.failuresSinceLog = 0;
      }
    } finally {
      this.running = false;
      this.lastEnd = Date.now();
      this.runs++;
      const due = this.waiters.filter((w) => w.target <= this.runs);
      this.waiters = this.waiters.filter((w) => w.target > this.runs);
      for (const w of due) w.resolve();
    }
    if (this.stopped) return;
    // A pending trigger runs at once after a success, after the backoff after a failure.
    if (this.pending && this.failures === 0) this.schedule(0);
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

  /** No run starts after this; resolves once a run already in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.running) await new Promise<void>((resolve) => this.waiters.push({ target: this.runs + 1, resolve }));
  }
}
