import { isIP } from 'node:net';
import { run } from './exec.js';

/**
 * ICMP echo from inside a network namespace (iputils `ping` under nsenter): reachability, and
 * with `dontFragment` and a size, whether a full-MTU packet crosses unfragmented. What ping says
 * when it fails (no answer, "message too long", "Frag needed") is kept as the reason.
 */
export interface PingOptions {
  family: 4 | 6;
  /** ICMP payload bytes (ping -s); the packet is this plus 8 (ICMP) and 20 or 40 (IP). */
  payloadBytes?: number;
  /** Set DF (IPv4) / forbid fragmentation (IPv6): ping -M do. */
  dontFragment?: boolean;
  count?: number;
  /** How long to wait for each answer. */
  timeoutMs: number;
}

export interface PingResult {
  ok: boolean;
  sent: number;
  received: number;
  /** Why it failed, in ping's words where it gave any. */
  error?: string;
}

export class PingArgumentError extends Error {
  readonly code = 'ERR_PING_ARGUMENT';
  constructor(message: string) {
    super(message);
    this.name = 'PingArgumentError';
  }
}

/** Pings `address` from the netns at `netnsPath`; ok when every echo was answered. */
export async function pingInNetns(netnsPath: string, address: string, o: PingOptions): Promise<PingResult> {
  if (isIP(address) !== o.family) throw new PingArgumentError(`ping: ${JSON.stringify(address)} is not an IPv${o.family} address`);
  const count = o.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new PingArgumentError(`ping: count ${count}: expected 1-100`);
  if (o.payloadBytes !== undefined && (!Number.isInteger(o.payloadBytes) || o.payloadBytes < 0 || o.payloadBytes > 65_507)) {
    throw new PingArgumentError(`ping: payload ${o.payloadBytes}: expected 0-65507 bytes`);
  }
  const waitSeconds = Math.max(0.1, o.timeoutMs / 1000).toFixed(1);
  const args = [
    `--net=${netnsPath}`, '--',
    'ping', `-${o.family}`, '-n', '-c', String(count), '-i', '0.2', '-W', waitSeconds,
    ...(o.dontFragment ? ['-M', 'do'] : []),
    ...(o.payloadBytes !== undefined ? ['-s', String(o.payloadBytes)] : []),
    address,
  ];
  const r = await run('nsenter', args, { allowFailure: true, timeoutMs: o.timeoutMs * count + 5000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const sent = Number(m?.[1] ?? 0);
  const received = Number(m?.[2] ?? 0);
  if (r.exitCode === 0 && received === count) return { ok: true, sent, received };
  // ping's own complaint (stderr, e.g. "local error: message too long, mtu=1450"), else an ICMP
  // error it printed ("From … Frag needed and DF set"), else the count.
  const said = [...r.stderr.split('\n'), ...r.stdout.split('\n').filter((l) => /^From /.test(l))].map((l) => l.replace(/^ping: /, '').trim()).find((l) => l !== '');
  return { ok: false, sent, received, error: said ?? `${received} of ${sent || count} echoes answered within ${o.timeoutMs} ms` };
}
