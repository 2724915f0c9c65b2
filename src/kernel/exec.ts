import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * The one place Weft starts programs: argument arrays only (never a shell), a timeout on every
 * call, and a typed error that names the program and says why it failed.
 */
export interface RunOptions {
  /** Written to the program's stdin, which is then closed. */
  input?: string | Buffer;
  /** Default 10 s. The program is killed with SIGKILL when it expires. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Resolve instead of rejecting on a non-zero exit (the caller inspects exitCode). */
  allowFailure?: boolean;
  /** Open descriptors the program gets as fd 3, 4, … (e.g. a netns it names /proc/self/fd/3). */
  passFds?: readonly number[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class CommandError extends Error {
  readonly code = 'ERR_COMMAND_FAILED';
  readonly file: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;

  constructor(init: {
    file: string;
    args: readonly string[];
    exitCode: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    cause?: unknown;
  }) {
    const what = [init.file, ...init.args].join(' ');
    const why = init.timedOut
      ? 'timed out'
      : init.signal
        ? `was killed by ${init.signal}`
        : `exited with ${init.exitCode}`;
    const stderr = init.stderr.trim();
    super(`${what} ${why}${stderr ? `: ${stderr}` : ''}`, { cause: init.cause });
    this.name = 'CommandError';
    this.file = init.file;
    this.args = init.args;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.timedOut = init.timedOut;
  }
}

export class CommandNotFoundError extends Error {
  readonly code = 'ERR_COMMAND_NOT_FOUND';
  constructor(
    readonly file: string,
    hint: string,
  ) {
    super(`${file} is not installed or not on PATH${hint ? ` (${hint})` : ''}`);
    this.name = 'CommandNotFoundError';
  }
}

/** Debian package that provides each program we run, for a useful "not found" message. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  ip: 'apt-get install iproute2',
  nsenter: 'apt-get install util-linux',
  unshare: 'apt-get install util-linux',
  nft: 'apt-get install nftables',
  tc: 'apt-get install iproute2',
  wg: 'apt-get install wireguard-tools',
  'wireguard-go': 'apt-get install wireguard-go',
};

export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe', ...(opts.passFds ?? [])],
      env: opts.env ?? process.env,
    }) as ChildProcessWithoutNullStreams;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {
      /* the program may exit before reading its input; its exit status tells the story */
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') reject(new CommandNotFoundError(file, PACKAGE_OF[file] ?? ''));
      else
        reject(
          new CommandError({
            file,
            args,
            exitCode: null,
            signal: null,
            stdout: '',
            stderr: e.message,
            timedOut: false,
            cause: e,
          }),
        );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0 || (opts.allowFailure && code !== null && !timedOut)) {
        resolve({ stdout, stderr, exitCode: code ?? 0 });
        return;
      }
      reject(new CommandError({ file, args, exitCode: code, signal, stdout, stderr, timedOut }));
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export interface DaemonOptions {
  /** Run inside this netns (path), via nsenter. */
  netns?: string;
  /** Append stdout and stderr to this file (it is created). */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Outlive the caller (the lab's agents outlive `weft lab up`). */
  detached?: boolean;
  /**
   * A mount namespace of its own, as an agent in a container has: `ip-netns-exec` as
   * `ip netns exec` makes it (a slave of the current one; `netns` must be /run/netns/NAME),
   * `private` sees no mount made after it starts.
   */
  mountNamespace?: 'ip-netns-exec' | 'private';
}

function daemonCommand(file: string, args: readonly string[], opts: DaemonOptions): [string, string[]] {
  const { netns, mountNamespace } = opts;
  if (netns === undefined) {
    if (mountNamespace !== undefined) throw new Error('a mount namespace of its own is only offered together with a netns');
    return [file, [...args]];
  }
  if (mountNamespace === 'ip-netns-exec') {
    const name = /^\/run\/netns\/([^/]+)$/.exec(netns)?.[1];
    if (name === undefined) throw new Error(`ip netns exec needs a netns under /run/netns, not ${netns}`);
    return ['ip', ['netns', 'exec', name, file, ...args]];
  }
  const enter = ['--net=' + netns, '--', file, ...args];
  // unshare and nsenter exec in turn: the PID the caller gets is the daemon's own.
  return mountNamespace === 'private' ? ['unshare', ['--mount', '--propagation', 'private', '--', 'nsenter', ...enter]] : ['nsenter', enter];
}

/** Ends a process by PID: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
export async function endProcess(pid: number, graceMs = 5000): Promise<void> {
  // A zombie (dead, not reaped yet: its parent may be gone and PID 1 may not reap) counts as gone.
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
    const hard = Date.now() + 5000;
    while (alive() && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a long-running process (an agent for a lab or test node) and returns it; the caller owns
 * it and ends it by its PID.
 */
export async function startDaemon(file: string, args: readonly string[], opts: DaemonOptions = {}): Promise<import('node:child_process').ChildProcess> {
  const { openSync, closeSync } = await import('node:fs');
  const [cmd, cmdArgs] = daemonCommand(file, args, opts);
  // 0600: a daemon's output is the node's business, not every local user's.
  const fd = opts.logFile ? openSync(opts.logFile, 'a', 0o600) : 'ignore';
  try {
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', fd, fd], env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}), detached: opts.detached === true });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new CommandNotFoundError(cmd, PACKAGE_OF[cmd] ?? '') : e),
      );
    });
    if (opts.detached) child.unref();
    return child;
  } finally {
    if (typeof fd === 'number') closeSync(fd);
  }
}
