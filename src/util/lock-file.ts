import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { createFileExclusive } from './atomic-file.js';
import { Mutex } from './mutex.js';

/**
 * A lock shared by processes on one host: a file holding its owner's pid, the owner's start time
 * and a nonce, created whole (written to a temporary file, then link()ed into place — atomic and
 * exclusive), so a lock file is never seen half-written.
 *
 * A lock is broken when its owner is gone: no such pid, or a pid now used by another process
 * (its start time differs). A file that is not a lock of this format at all — empty or garbage,
 * left by an older writer or by hand — is broken once it is older than STALE_UNREADABLE_MS.
 * Breakers take turns through a second exclusive file (`<lock>.break`): under it the lock is read
 * again and removed only if it is still the one judged stale — nobody else can replace a lock
 * file that exists, so two processes never both come to hold the lock. (A breaker killed in
 * those microseconds leaves a `.break` file, removed once older than STALE_BREAKER_MS.) Meant
 * for short critical sections; within one process, callers queue on a mutex first.
 */
const STALE_UNREADABLE_MS = 2_000;
const STALE_BREAKER_MS = 10_000;

export interface LockFaults {
  /** Test-only: called right after the lock is taken (crash tests kill the process there). */
  afterAcquire?: () => void;
}

interface Holder {
  pid: number;
  start: string;
  nonce: string;
  text: string;
}

/**
 * Start time of a live process in clock ticks since boot (field 22 of /proc/PID/stat); undefined
 * when it is gone or a zombie (dead, not yet reaped).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/**
 * The live process a pid file ("PID STARTTIME", as the agent writes agent.pid) names, or
 * undefined when it names none: no file, a dead process, or a pid since reused by another.
 */
export function pidFileHolder(text: string): number | undefined {
  const [pidText, started] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const now = processStartTime(pid);
  return now !== undefined && (started === undefined || started === now) ? pid : undefined;
}

const SELF_START = processStartTime(process.pid) ?? '0';

export class LockFile {
  private readonly local = new Mutex();

  constructor(
    readonly path: string,
    private readonly what: string,
    private readonly timeoutMs = 10_000,
    private readonly faults: LockFaults = {},
  ) {}

  run<R>(fn: () => R | Promise<R>): Promise<R> {
    return this.local.run(async () => {
      const mine = await this.acquire();
      try {
        this.faults.afterAcquire?.();
        return await fn();
      } finally {
        this.release(mine);
      }
    });
  }

  private async acquire(): Promise<string> {
    const deadline = Date.now() + this.timeoutMs;
    const text = `${process.pid} ${SELF_START} ${randomBytes(8).toString('hex')}\n`;
    for (;;) {
      if (createFileExclusive(this.path, text)) return text;
      const holder = this.readHolder();
      if (holder === undefined) continue; // released between our attempt and our read
      if (this.isStale(holder)) {
        this.breakLock(holder);
        continue;
      }
      if (Date.now() > deadline) {
        const who = typeof holder === 'string' ? `an unreadable lock file (${JSON.stringify(holder.slice(0, 40))})` : `pid ${holder.pid}`;
        throw new LockTimeoutError(`${this.what} stayed locked by ${who} for ${this.timeoutMs / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, 1 + Math.random() * 2));
    }
  }

  /** The holder, the raw text of an unreadable lock file, or undefined when there is none. */
  private readHolder(): Holder | string | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const m = /^(\d{1,10}) (\d{1,20}) ([0-9a-f]{16})\n$/.exec(text);
    if (!m) return text;
    return { pid: Number(m[1]), start: m[2] as string, nonce: m[3] as string, text };
  }

  private isStale(holder: Holder | string): boolean {
    if (typeof holder === 'string') {
      try {
        return Date.now() - statSync(this.path).mtimeMs > STALE_UNREADABLE_MS;
      } catch {
        return false; // gone meanwhile: just try again
      }
    }
    const start = processStartTime(holder.pid);
    return start === undefined || start !== holder.start;
  }

  private breakLock(holder: Holder | string): void {
    const breaker = `${this.path}.break`;
    if (!createFileExclusive(breaker, `${process.pid}\n`)) {
      try {
        if (Date.now() - statSync(breaker).mtimeMs > STALE_BREAKER_MS) rmSync(breaker, { force: true });
      } catch {
        /* gone meanwhile */
      }
      return; // another process is breaking it: look again
    }
    try {
      const judged = typeof holder === 'string' ? holder : holder.text;
      const now = this.readHolder();
      const text = now === undefined ? undefined : typeof now === 'string' ? now : now.text;
      if (text === judged) unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      rmSync(breaker, { force: true });
    }
  }

  /** Removes the lock only if it is still ours. */
  private release(mine: string): void {
    try {
      if (readFileSync(this.path, 'utf8') === mine) unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

export class LockTimeoutError extends Error {
  readonly code = 'ERR_LOCK_TIMEOUT';
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
