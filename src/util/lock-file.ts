import { closeSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { Mutex } from './mutex.js';

/**
 * A lock shared by processes on one host: a file created with O_EXCL holding the owner's pid. A
 * lock whose owner is gone (it crashed while holding it) is broken. Meant for short critical
 * sections; within one process, callers queue on a mutex first.
 */
export class LockFile {
  private readonly local = new Mutex();

  constructor(
    readonly path: string,
    private readonly what: string,
    private readonly timeoutMs = 10_000,
  ) {}

  run<R>(fn: () => R | Promise<R>): Promise<R> {
    return this.local.run(async () => {
      await this.acquire();
      try {
        return await fn();
      } finally {
        unlinkSync(this.path);
      }
    });
  }

  private async acquire(): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      try {
        const fd = openSync(this.path, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(this.path);
      if (holder === undefined) continue; // released between our open and our read
      if (holder > 0 && !isAlive(holder)) {
        if (readHolder(this.path) === holder) rmSync(this.path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new LockTimeoutError(`${this.what} stayed locked by pid ${holder} for ${this.timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 1 + Math.random() * 2));
    }
  }
}

export class LockTimeoutError extends Error {
  readonly code = 'ERR_LOCK_TIMEOUT';
}

/** The pid in a lock file; undefined when the file is gone; 0 while its writer has not written it yet. */
function readHolder(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
