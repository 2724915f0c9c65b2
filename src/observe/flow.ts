/**
 * A flow record — what a node saw of one connection or one dropped packet — and what readers do
 * with records: filter them (`weft flows` flags) and print them (pure). Modeled on Hubble's
 * flow (time, node, verdict, drop reason, direction, ends with pod and labels, ports) with
 * Weft's own addition: for a policy drop, the deciding rule in `weft policy trace`'s words.
 */
import { UserError } from '../util/user-error.js';

export type Verdict = 'forwarded' | 'dropped';

/**
 * Why a packet was dropped. Policy: `policy-isolated` (a NetworkPolicy isolates the pod, no rule
 * allows), `policy-denied` (a WeftClusterPolicy rule denies), `unknown-address` (a local pod
 * address with no policy entry: not yet attached, or spoofed). The kernel, from its ICMP error:
 * `no-route`, `host-unreachable` (no route to the host, or its neighbour did not answer),
 * `too-big` (larger than the path's MTU, DF set), `port-unreachable`, `prohibited`, `other`.
 * A bounded set: metrics use it as a label.
 */
export const DROP_REASONS = ['policy-isolated', 'policy-denied', 'unknown-address', 'no-route', 'host-unreachable', 'too-big', 'port-unreachable', 'prohibited', 'other'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface FlowEnd {
  address: string;
  port?: number;
  /** "namespace/name" when the address is a pod's. */
  pod?: string;
  namespace?: string;
  /** The node the pod runs on, or the node whose address this is. */
  node?: string;
  labels?: Record<string, string>;
}

export interface FlowRecord {
  /** ISO 8601, milliseconds. */
  time: string;
  /** The node that saw it. */
  node: string;
  verdict: Verdict;
  /** Relative to the local pod: egress when it sent it, ingress when it receives it. */
  direction: 'ingress' | 'egress';
  family: 4 | 6;
  /** TCP, UDP, SCTP, ICMP, ICMPv6, or the protocol number. */
  protocol: string;
  source: FlowEnd;
  destination: FlowEnd;
  tcpFlags?: string;
  icmp?: { type: number; code: number };
  dropReason?: DropReason;
  /** Why, in words: the deciding rule for a policy drop (as `weft policy trace` says it). */
  explanation?: string;
  /** For a policy drop: the policies that decided ("ns/name" or "WeftClusterPolicy name"). */
  policies?: string[];
  /** Where it was seen: the interfaces in and out. */
  interfaces?: { in?: string; out?: string };
}

export interface FlowFilter {
  /** Records at or after this time (ms since the epoch). */
  since?: number;
  /** "ns/pod": either end. */
  pod?: string;
  /** Either end's namespace. */
  namespace?: string;
  verdict?: Verdict;
  /** Upper-case protocol name. */
  protocol?: string;
  /** Either end's port. */
  port?: number;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "5m", "1h" → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new UserError(`${what} ${JSON.stringify(text)}: expected a duration such as 30s, 5m, 2h or 1d`);
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

export interface FlowFlags {
  since?: string;
  pod?: string;
  namespace?: string;
  verdict?: string;
  protocol?: string;
  port?: string;
}

/** The `weft flows` flags as a filter; `now` anchors --since. */
export function filterFromFlags(f: FlowFlags, now: number): FlowFilter {
  const out: FlowFilter = {};
  if (f.since !== undefined) out.since = now - parseDuration(f.since, '--since');
  if (f.pod !== undefined) {
    if (!/^[^/\s]+\/[^/\s]+$/.test(f.pod)) throw new UserError(`--pod ${JSON.stringify(f.pod)}: expected NAMESPACE/POD`);
    out.pod = f.pod;
  }
  if (f.namespace !== undefined) out.namespace = f.namespace;
  if (f.verdict !== undefined) {
    const v = f.verdict.toLowerCase();
    if (v !== 'forwarded' && v !== 'dropped') throw new UserError(`--verdict ${JSON.stringify(f.verdict)}: expected forwarded or dropped`);
    out.verdict = v;
  }
  if (f.protocol !== undefined) {
    const p = f.protocol.toUpperCase();
    const known = ['TCP', 'UDP', 'SCTP', 'ICMP', 'ICMPV6'];
    if (!known.includes(p)) throw new UserError(`--protocol ${JSON.stringify(f.protocol)}: expected TCP, UDP, SCTP, ICMP or ICMPv6`);
    out.protocol = p === 'ICMPV6' ? 'ICMPv6' : p;
  }
  if (f.port !== undefined) {
    const n = Number(f.port);
    if (!/^\d+$/.test(f.port) || n < 1 || n > 65535) throw new UserError(`--port ${JSON.stringify(f.port)}: expected 1-65535`);
    out.port = n;
  }
  return out;
}

export function matchesFilter(r: FlowRecord, f: FlowFilter): boolean {
  if (f.since !== undefined && Date.parse(r.time) < f.since) return false;
  const ends = [r.source, r.destination];
  if (f.pod !== undefined && !ends.some((e) => e.pod === f.pod)) return false;
  if (f.namespace !== undefined && !ends.some((e) => e.namespace === f.namespace)) return false;
  if (f.verdict !== undefined && r.verdict !== f.verdict) return false;
  if (f.protocol !== undefined && r.protocol !== f.protocol) return false;
  if (f.port !== undefined && !ends.some((e) => e.port === f.port)) return false;
  return true;
}

function endText(e: FlowEnd): string {
  const who = e.pod ?? (e.node ? `node ${e.node}` : e.address);
  const addr = e.pod || e.node ? ` (${e.address})` : '';
  return `${who}${addr}${e.port !== undefined ? `:${e.port}` : ''}`;
}

/** One line (and for a drop an indented reason), as `weft flows` prints. */
export function flowText(r: FlowRecord): string {
  const time = r.time.slice(11, 23);
  const what = r.protocol + (r.tcpFlags ? ` ${r.tcpFlags}` : '') + (r.icmp ? ` type ${r.icmp.type}/${r.icmp.code}` : '');
  const head = `${time} ${r.node} ${r.verdict === 'dropped' ? 'DROPPED  ' : 'FORWARDED'} ${r.direction.padEnd(7)} ${endText(r.source)} -> ${endText(r.destination)} ${what}`;
  if (r.verdict !== 'dropped') return head;
  return `${head}\n    ${r.dropReason ?? 'dropped'}${r.explanation ? `: ${r.explanation}` : ''}`;
}

/** Records of several nodes in time order (each node's list is already in order). */
export function mergeByTime(lists: FlowRecord[][]): FlowRecord[] {
  return lists.flat().sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.node < b.node ? -1 : 1));
}
