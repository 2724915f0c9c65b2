import { CommandError, run } from './exec.js';
import type { OpenNetns } from './netns.js';

/**
 * iproute2, driven with `ip -batch -` so that one process does a whole step (a pod attachment is
 * two processes: one on the node, one inside the pod's netns via nsenter). Work inside another
 * netns goes through `nsenter --net=…`, which takes any netns file (`ip -n` only takes names); a
 * pod's netns is an open descriptor the child gets as fd 3 (see netns.ts).
 *
 * Batch commands are token lists, never text: iproute2 splits a batch line at whitespace, ends
 * it at "#" (quotes or not) and treats quotes specially, so each token is checked to be one
 * plain word before it is written, and a value that is not is an IpArgumentError naming it.
 */
export type IpCommand = readonly string[];

export class IpArgumentError extends Error {
  readonly code = 'ERR_IP_ARGUMENT';
  constructor(
    readonly token: string,
    readonly command: IpCommand,
  ) {
    super(`${JSON.stringify(token)} cannot be an argument of \`ip ${command.map((t) => JSON.stringify(t)).join(' ')}\`: an argument must be 1-1024 characters without whitespace, quotes, backslashes, "#" or control characters`);
    this.name = 'IpArgumentError';
  }
}

const TOKEN = /^[^\s#"'\\\x00-\x1f\x7f]{1,1024}$/;

/** One batch line from tokens (pure): throws IpArgumentError unless every token is one word. */
export function batchLine(command: IpCommand): string {
  if (command.length === 0) throw new IpArgumentError('', command);
  for (const t of command) if (typeof t !== 'string' || !TOKEN.test(t)) throw new IpArgumentError(String(t), command);
  return command.join(' ');
}

/**
 * A command from a template: the literal text splits into words at whitespace, and each value
 * stays inside the word it is written in — `ipc\`addr add ${a}/32 dev ${d}\`` is four words
 * whatever `a` and `d` hold (a value with a space in it is then refused by batchLine).
 */
export function ipc(strings: TemplateStringsArray, ...values: ReadonlyArray<string | number>): IpCommand {
  const out: string[] = [];
  let word: string | undefined;
  const end = (): void => {
    if (word !== undefined) out.push(word);
    word = undefined;
  };
  strings.forEach((literal, i) => {
    for (const ch of literal) {
      if (/\s/.test(ch)) end();
      else word = (word ?? '') + ch;
    }
    if (i < values.length) word = (word ?? '') + String(values[i]);
  });
  end();
  return out;
}

/** The path a child process sees the i-th passed descriptor at. */
export const passedFdPath = (i = 0): string => `/proc/self/fd/${3 + i}`;
export type IpFailureReason = 'exists' | 'not-found' | 'invalid-netns' | 'other';

export class IpError extends Error {
  readonly code = 'ERR_IP';
  constructor(
    message: string,
    /** The batch line that failed, when known. */
    readonly command: string | undefined,
    /** 0-based index of that line in the batch. */
    readonly line: number | undefined,
    readonly reason: IpFailureReason,
    /** The netns the batch ran in; undefined is the agent's own. */
    readonly netns: string | undefined,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IpError';
  }
}

export function isIpNotFound(err: unknown): boolean {
  return err instanceof IpError && err.reason === 'not-found';
}

export interface IpOptions {
  /**
   * Run inside this netns: an open one (a pod's), or a path the caller itself controls (the
   * lab's and tests' named namespaces, /run/netns/x).
   */
  netns?: string | OpenNetns;
  /** Descriptors the commands name as passedFdPath(0), (1), …; after an open `netns`, if any. */
  fds?: readonly number[];
  json?: boolean;
  /** `ip -details`: adds link kinds (veth, vxlan…) and route types. */
  details?: boolean;
  /**
   * `ip -force -batch`: go on past a failing line (the batch still fails, naming it). For
   * reconciling independent objects (one peer's route the kernel refuses must not hold back
   * the others'), never for a sequence whose steps depend on each other.
   */
  force?: boolean;
  timeoutMs?: number;
}

function classify(stderr: string): IpFailureReason {
  // The kernel's EEXIST, in its plain words or in its extended ack (an address added twice).
  if (/File exists|already assigned|already exists/.test(stderr)) return 'exists';
  if (/Cannot find device|No such device|No such process|does not exist|Object not found|No such file or directory/.test(stderr)) {
    return 'not-found';
  }
  if (/Invalid "netns" value/.test(stderr)) return 'invalid-netns';
  return 'other';
}

interface Invocation {
  file: string;
  args: string[];
  passFds: number[];
}

function invocation(args: string[], opts: IpOptions): Invocation {
  const ipArgs = [...(opts.json ? ['-json'] : []), ...(opts.details ? ['-details'] : []), ...(opts.force ? ['-force'] : []), ...args];
  const fds = [...(opts.fds ?? [])];
  if (opts.netns === undefined) return { file: 'ip', args: ipArgs, passFds: fds };
  if (typeof opts.netns === 'string') return { file: 'nsenter', args: [`--net=${opts.netns}`, '--', 'ip', ...ipArgs], passFds: fds };
  return { file: 'nsenter', args: [`--net=${passedFdPath(0)}`, '--', 'ip', ...ipArgs], passFds: [opts.netns.fd, ...fds] };
}

function netnsName(opts: IpOptions): string | undefined {
  return opts.netns === undefined ? undefined : typeof opts.netns === 'string' ? opts.netns : opts.netns.path;
}

function where(opts: IpOptions): string {
  const n = netnsName(opts);
  return n !== undefined ? ` in netns ${JSON.stringify(n).slice(1, -1)}` : '';
}

/** Runs several ip commands in one process; stops at the first failure and names that line. */
export async function ipBatch(commands: readonly IpCommand[], opts: IpOptions = {}): Promise<string> {
  if (commands.length === 0) return '';
  const lines = commands.map(batchLine);
  const { file, args, passFds } = invocation(['-batch', '-'], opts);
  try {
    const r = await run(file, args, { input: lines.join('\n') + '\n', timeoutMs: opts.timeoutMs ?? 10_000, passFds });
    return r.stdout;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const m = /Command failed -:(\d+)/.exec(err.stderr);
    const line = m ? Number(m[1]) - 1 : undefined;
    const command = line !== undefined ? lines[line] : undefined;
    const detail = err.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('Command failed'))
      .join('; ');
    if (err.stderr.includes('cannot open network namespace') || /nsenter: /.test(err.stderr)) {
      throw new IpError(`cannot enter netns ${netnsName(opts)}: ${detail}`, command, line, 'not-found', netnsName(opts), err.stderr, {
        cause: err,
      });
    }
    const msg = command ? `ip ${command}${where(opts)} failed: ${detail}` : `ip -batch${where(opts)} failed: ${detail || err.message}`;
    throw new IpError(msg, command, line, classify(err.stderr), netnsName(opts), err.stderr, { cause: err });
  }
}

/** One ip command. */
export async function ip(args: readonly string[], opts: IpOptions = {}): Promise<string> {
  const { file, args: fullArgs, passFds } = invocation([...args], opts);
  try {
    const r = await run(file, fullArgs, { timeoutMs: opts.timeoutMs ?? 10_000, passFds });
    return r.stdout;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const detail = err.stderr.trim().split('\n').join('; ');
    throw new IpError(`ip ${args.join(' ')}${where(opts)} failed: ${detail}`, args.join(' '), 0, classify(err.stderr), netnsName(opts), err.stderr, {
      cause: err,
    });
  }
}

/** Runs show commands in one batch with -json; returns one parsed value per line of input. */
export async function ipJsonBatch(lines: readonly IpCommand[], opts: IpOptions = {}): Promise<unknown[]> {
  const out = await ipBatch(lines, { ...opts, json: true });
  const values = out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
  if (values.length !== lines.length) {
    throw new IpError(
      `ip -json -batch${where(opts)} returned ${values.length} results for ${lines.length} commands`,
      undefined,
      undefined,
      'other',
      netnsName(opts),
      '',
    );
  }
  return values;
}
