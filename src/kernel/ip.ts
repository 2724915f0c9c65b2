import { CommandError, run } from './exec.js';

/**
 * iproute2, driven with `ip -batch -` so that one process does a whole step (a pod attachment is
 * two processes: one on the node, one inside the pod's netns via nsenter). Work inside another
 * netns goes through `nsenter --net=PATH`, which takes any netns path (`ip -n` only takes names).
 */
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
  /** Run inside this netns (a path such as /run/netns/x or /proc/PID/ns/net). */
  netns?: string;
  json?: boolean;
  /** `ip -details`: adds link kinds (veth, vxlan…) and route types. */
  details?: boolean;
  timeoutMs?: number;
}

function classify(stderr: string): IpFailureReason {
  if (/File exists/.test(stderr)) return 'exists';
  if (/Cannot find device|No such device|No such process|does not exist|Object not found|No such file or directory/.test(stderr)) {
    return 'not-found';
  }
  if (/Invalid "netns" value/.test(stderr)) return 'invalid-netns';
  return 'other';
}

function invocation(args: string[], opts: IpOptions): [string, string[]] {
  const ipArgs = [...(opts.json ? ['-json'] : []), ...(opts.details ? ['-details'] : []), ...args];
  if (opts.netns !== undefined) return ['nsenter', [`--net=${opts.netns}`, '--', 'ip', ...ipArgs]];
  return ['ip', ipArgs];
}

function where(opts: IpOptions): string {
  return opts.netns !== undefined ? ` in netns ${opts.netns}` : '';
}

/** Runs several ip commands in one process; stops at the first failure and names that line. */
export async function ipBatch(lines: readonly string[], opts: IpOptions = {}): Promise<string> {
  if (lines.length === 0) return '';
  const [file, args] = invocation(['-batch', '-'], opts);
  try {
    const r = await run(file, args, { input: lines.join('\n') + '\n', timeoutMs: opts.timeoutMs ?? 10_000 });
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
      throw new IpError(`cannot enter netns ${opts.netns}: ${detail}`, command, line, 'not-found', opts.netns, err.stderr, {
        cause: err,
      });
    }
    const msg = command ? `ip ${command}${where(opts)} failed: ${detail}` : `ip -batch${where(opts)} failed: ${detail || err.message}`;
    throw new IpError(msg, command, line, classify(err.stderr), opts.netns, err.stderr, { cause: err });
  }
}

/** One ip command. */
export async function ip(args: readonly string[], opts: IpOptions = {}): Promise<string> {
  const [file, fullArgs] = invocation([...args], opts);
  try {
    const r = await run(file, fullArgs, { timeoutMs: opts.timeoutMs ?? 10_000 });
    return r.stdout;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const detail = err.stderr.trim().split('\n').join('; ');
    throw new IpError(`ip ${args.join(' ')}${where(opts)} failed: ${detail}`, args.join(' '), 0, classify(err.stderr), opts.netns, err.stderr, {
      cause: err,
    });
  }
}

/** Runs show commands in one batch with -json; returns one parsed value per line of input. */
export async function ipJsonBatch(lines: readonly string[], opts: IpOptions = {}): Promise<unknown[]> {
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
      opts.netns,
      '',
    );
  }
  return values;
}
