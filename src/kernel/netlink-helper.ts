/**
 * The agent's rtnetlink helper (native/weft-netlink.c): long-lived child processes that run
 * the pod batches of ADD and DEL as netlink messages instead of an `ip` process per step (two
 * per ADD, one of them under nsenter: ~11 ms of the agent's ~12.6 ms, docs/benchmarks.md §1).
 * Batches go one at a time over its stdin; a pod's netns and the peer's netns are the agent's
 * open descriptors, which a helper — our child, in our pid namespace — opens as
 * /proc/<agent>/fd/N. A batch it does not know runs through `ip` instead; a helper that dies or
 * stops answering is killed by its PID and replaced for the next batch.
 */
import { findBuiltFile } from '../util/built-file.js';
import { HelperProcess } from './helper-process.js';
import { ipProcessRunner, type BatchOptions, type BatchRunner } from './batch-runner.js';
import { batchLine, IpError, type IpCommand, type IpFailureReason } from './ip.js';

/** dist/weft-netlink; undefined if not built. */
export function findNetlinkHelper(): string | undefined {
  return findBuiltFile('weft-netlink');
}

const ERRNO_REASON: Readonly<Record<number, IpFailureReason>> = { 17: 'exists', 19: 'not-found', 2: 'not-found', 3: 'not-found' };

/** What the helper itself takes (native/weft-netlink.c): more goes to `ip`. */
const HELPER_MAX_LINES = 64;
const HELPER_MAX_LINE_BYTES = 4000;

interface Waiter {
  give(p: HelperProcess): void;
  timer: NodeJS.Timeout;
}

/**
 * The helpers: one while calls come one at a time, more (up to `maxProcesses`) while batches
 * overlap — deleting a veth waits ~20 ms in the kernel, and concurrent DELs must not queue
 * behind each other as they would in one process. Extra helpers stay (each ~1 MiB). A helper
 * that dies or times out leaves the pool at once, and whoever waits gets a new one.
 */
export class NetlinkHelper implements BatchRunner {
  readonly name = 'netlink';
  private idle: HelperProcess[] = [];
  private readonly all = new Set<HelperProcess>();
  private readonly waiters: Waiter[] = [];
  /** Batches answered, and of those sent to `ip` (a line, or a size, the helper does not take). */
  readonly stats = { batches: 0, fallbacks: 0 };

  constructor(
    private readonly binary: string,
    private readonly timeoutMs = 10_000,
    private readonly maxProcesses = 8,
  ) {}

  /** Whether the helper runs here at all (built for this machine, executable): an empty batch. */
  async works(): Promise<boolean> {
    try {
      const p = await this.acquire();
      try {
        return (await p.exchange('batch - - 0\n', this.timeoutMs)) === 'ok';
      } finally {
        this.release(p);
      }
    } catch {
      return false;
    }
  }

  async run(commands: readonly IpCommand[], opts: BatchOptions = {}): Promise<void> {
    if (commands.length === 0) return;
    if (opts.netns && opts.passed !== undefined) throw new Error('a batch runs inside a netns or names a passed netns, not both');
    const lines = commands.map(batchLine);
    if (lines.length > HELPER_MAX_LINES || lines.some((l) => Buffer.byteLength(l) > HELPER_MAX_LINE_BYTES)) {
      this.stats.fallbacks++;
      return ipProcessRunner.run(commands, opts);
    }
    const head = `batch ${opts.netns ? opts.netns.fd : '-'} ${opts.passed ?? '-'} ${lines.length}`;
    const helper = await this.acquire();
    let reply: string;
    try {
      reply = await helper.exchange(`${head}\n${lines.join('\n')}\n`, this.timeoutMs);
    } finally {
      this.release(helper);
    }
    this.stats.batches++;
    if (reply === 'ok') return;
    if (reply.startsWith('unsupported ')) {
      this.stats.fallbacks++;
      return ipProcessRunner.run(commands, opts);
    }
    const m = /^err (-?\d+) (\d+) (.*)$/.exec(reply);
    if (!m) throw helper.broken(`answered ${JSON.stringify(reply)}`);
    const [index, errno, text] = [Number(m[1]), Number(m[2]), m[3] ?? ''];
    const path = opts.netns?.path;
    const where = path !== undefined ? ` in netns ${JSON.stringify(path).slice(1, -1)}` : '';
    if (index === -1) throw new IpError(`cannot enter netns ${path ?? '?'}: ${text}`, undefined, undefined, 'not-found', path, text);
    const line = index === -2 ? Math.max(0, lines.findIndex((l) => l.includes('/proc/self/fd/3'))) : index;
    const reason: IpFailureReason = index === -2 ? 'invalid-netns' : (ERRNO_REASON[errno] ?? 'other');
    throw new IpError(`ip ${lines[line] ?? ''}${where} failed: RTNETLINK answers: ${text}`, lines[line], line, reason, path, text);
  }

  private spawnOne(): HelperProcess {
    const p = new HelperProcess(this.binary, (gone) => this.drop(gone), (what, stderr) => new IpError(`the netlink helper ${this.binary} ${what}${stderr ? `: ${stderr}` : ''}`, undefined, undefined, 'other', undefined, stderr));
    this.all.add(p);
    return p;
  }

  /** A helper left (died, timed out): out of the pool at once, and a waiter gets a new one. */
  private drop(p: HelperProcess): void {
    if (!this.all.delete(p)) return;
    this.idle = this.idle.filter((x) => x !== p);
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.give(this.spawnOne());
    }
  }

  private acquire(): Promise<HelperProcess> {
    for (let p = this.idle.pop(); p; p = this.idle.pop()) if (p.alive) return Promise.resolve(p);
    if (this.all.size < this.maxProcesses) return Promise.resolve(this.spawnOne());
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        give: resolve,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new IpError(`no netlink helper was free within ${this.timeoutMs} ms`, undefined, undefined, 'other', undefined, ''));
        }, this.timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  private release(p: HelperProcess): void {
    if (!p.alive || !this.all.has(p)) {
      // Timed out, dead, or the pool was closed meanwhile: it never serves again.
      this.drop(p);
      if (!this.all.has(p)) void p.close();
      return;
    }
    const w = this.waiters.shift();
    if (!w) {
      this.idle.push(p);
      return;
    }
    clearTimeout(w.timer);
    w.give(p);
  }

  /** The helpers' PIDs while they run. */
  get pids(): number[] {
    return [...this.all].map((p) => p.child.pid).filter((pid): pid is number => pid !== undefined);
  }

  async close(): Promise<void> {
    const all = [...this.all];
    this.all.clear();
    this.idle = [];
    await Promise.all(all.map((p) => p.close()));
  }
}
