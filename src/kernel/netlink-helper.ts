/**
 * The agent's rtnetlink helper (native/weft-netlink.c): long-lived child processes that run
 * the pod batches of ADD and DEL as netlink messages instead of an `ip` process per step (two
 * per ADD, one of them under nsenter: ~11 ms of the agent's ~12.6 ms, docs/benchmarks.md §1).
 * Batches go one at a time over its stdin; a pod's netns and the peer's netns are the agent's
 * open descriptors, which a helper — our child, in our pid namespace — opens as
 * /proc/<agent>/fd/N. A batch it does not know runs through `ip` instead; a helper that dies or
 * stops answering is killed by its PID and replaced for the next batch.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipProcessRunner, type BatchOptions, type BatchRunner } from './batch-runner.js';
import { batchLine, IpError, type IpCommand, type IpFailureReason } from './ip.js';

/** dist/weft-netlink, next to the bundled CLI or above the compiled sources; undefined if not built. */
export function findNetlinkHelper(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, 'weft-netlink'), join(dir, 'dist', 'weft-netlink')]) if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

const ERRNO_REASON: Readonly<Record<number, IpFailureReason>> = { 17: 'exists', 19: 'not-found', 2: 'not-found', 3: 'not-found' };

/** One helper process: one batch at a time. */
class HelperProcess {
  readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private err = '';
  private pending: ((line: string | Error) => void) | undefined;
  alive = true;

  constructor(
    private readonly binary: string,
    onExit: (p: HelperProcess) => void,
  ) {
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.out += d;
      const nl = this.out.indexOf('\n');
      if (nl < 0) return;
      const line = this.out.slice(0, nl);
      this.out = this.out.slice(nl + 1);
      this.pending?.(line);
    });
    child.stderr.on('data', (d: string) => {
      this.err = (this.err + d).slice(-2000);
    });
    // A write to a helper that just died must not take the agent down; 'exit' reports it.
    child.stdin.on('error', () => undefined);
    const gone = (why: string): void => {
      this.alive = false;
      onExit(this);
      this.pending?.(this.broken(why));
    };
    child.on('error', (e) => gone(`could not run: ${e.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code ?? '?'})`));
  }

  /** Sends one request and waits for its answer line. */
  exchange(request: string, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.alive = false;
        this.child.kill('SIGKILL');
        reject(this.broken(`did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = (line) => {
        clearTimeout(timer);
        this.pending = undefined;
        if (line instanceof Error) reject(line);
        else resolve(line);
      };
      this.child.stdin.write(request);
    });
  }

  broken(what: string): IpError {
    const stderr = this.err.trim();
    return new IpError(`the netlink helper ${this.binary} ${what}${stderr ? `: ${stderr}` : ''}`, undefined, undefined, 'other', undefined, stderr);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end(); // EOF: it exits by itself
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(timer);
  }
}

/**
 * The helpers: one while calls come one at a time, more (up to `maxProcesses`) while batches
 * overlap — deleting a veth waits ~20 ms in the kernel, and concurrent DELs must not queue
 * behind each other as they would in one process. Extra helpers stay (each ~1 MiB).
 */
export class NetlinkHelper implements BatchRunner {
  readonly name = 'netlink';
  private readonly idle: HelperProcess[] = [];
  private readonly all = new Set<HelperProcess>();
  private readonly waiters: Array<(p: HelperProcess) => void> = [];
  /** Batches run, and of those sent to `ip` because a line was not one the helper knows. */
  readonly stats = { batches: 0, fallbacks: 0 };

  constructor(
    private readonly binary: string,
    private readonly timeoutMs = 10_000,
    private readonly maxProcesses = 8,
  ) {}

  async run(commands: readonly IpCommand[], opts: BatchOptions = {}): Promise<void> {
    if (commands.length === 0) return;
    const lines = commands.map(batchLine);
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

  private acquire(): Promise<HelperProcess> {
    const ready = this.idle.pop();
    if (ready) return Promise.resolve(ready);
    if (this.all.size < this.maxProcesses) {
      const p = new HelperProcess(this.binary, (gone) => {
        this.all.delete(gone);
        const i = this.idle.indexOf(gone);
        if (i >= 0) this.idle.splice(i, 1);
      });
      this.all.add(p);
      return Promise.resolve(p);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(p: HelperProcess): void {
    // A dead one is not handed on; a waiter then gets a fresh one.
    const next = this.waiters.shift();
    if (!next) {
      if (p.alive) this.idle.push(p);
      return;
    }
    if (p.alive) next(p);
    else void this.acquire().then(next);
  }

  /** The helpers' PIDs while they run. */
  get pids(): number[] {
    return [...this.all].map((p) => p.child.pid).filter((pid): pid is number => pid !== undefined);
  }

  async close(): Promise<void> {
    const all = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(all.map((p) => p.close()));
  }
}
