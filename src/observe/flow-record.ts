/**
 * From one line of the NFLOG reader (native/weft-nflog.c) to a flow record (pure): the packet's
 * headers decoded, its ends named from the policy snapshot (pod, namespace, node, labels), and
 * for a policy drop the deciding rule found by the same evaluator `weft policy trace` runs —
 * the log prefix says only which drop chain it was; the snapshot says which rule.
 */
import { evaluate, hostOf, type FlowProtocol, type Host } from '../policy/evaluate.js';
import { directionLines } from '../policy/explain.js';
import { endpointKey, type Snapshot } from '../policy/ir.js';
import { dropPrefix, DROP_REASONS as TABLE_DROP_REASONS, FLOW_GROUPS, type DropReason as TableDropReason } from '../policy/compile.js';
import type { DropReason, FlowEnd, FlowRecord } from './flow.js';
import { decodePacket, type PacketHeaders } from './packet.js';

/** One reader line, split. */
export interface NflogPacket {
  group: number;
  inDev?: string;
  outDev?: string;
  prefix: string;
  payload: Uint8Array;
}

/** "pkt GROUP FAMILY INDEV OUTDEV PREFIX_HEX PAYLOAD_HEX" → its parts; undefined for other lines. */
export function parseNflogLine(line: string): NflogPacket | undefined {
  const f = line.split(' ');
  if (f[0] !== 'pkt' || f.length !== 7) return undefined;
  // A Buffer is a Uint8Array: no copy. Hex that is not hex decodes short, and the decoder
  // then finds no whole header (the reader is ours; this is about not trusting it blindly).
  const hex = (t: string): Uint8Array => (t === '-' ? new Uint8Array() : Buffer.from(t, 'hex'));
  const dev = (t: string): string | undefined => (t === '-' ? undefined : t);
  const group = Number(f[1]);
  if (!Number.isInteger(group)) return undefined;
  const inDev = dev(f[3] as string);
  const outDev = dev(f[4] as string);
  return { group, ...(inDev ? { inDev } : {}), ...(outDev ? { outDev } : {}), prefix: Buffer.from(hex(f[5] as string)).toString('latin1'), payload: hex(f[6] as string) };
}

const TABLE_REASON: Record<TableDropReason, DropReason> = { isolated: 'policy-isolated', denied: 'policy-denied', unknown: 'unknown-address' };
const PREFIXES = new Map(TABLE_DROP_REASONS.flatMap((r) => (['ingress', 'egress'] as const).map((d) => [dropPrefix(r, d), { reason: TABLE_REASON[r], direction: d }] as const)));

/** The kernel's ICMP error → why it refused the packet it quotes. */
function kernelReason(h: PacketHeaders): DropReason {
  const { type, code } = h.icmp ?? { type: -1, code: -1 };
  if (h.protocol === 'ICMP' && type === 3) return code === 0 || code === 6 ? 'no-route' : code === 1 || code === 7 ? 'host-unreachable' : code === 4 ? 'too-big' : code === 3 ? 'port-unreachable' : code === 9 || code === 10 || code === 13 ? 'prohibited' : 'other';
  if (h.protocol === 'ICMPv6' && type === 2) return 'too-big';
  if (h.protocol === 'ICMPv6' && type === 1) return code === 0 ? 'no-route' : code === 3 ? 'host-unreachable' : code === 4 ? 'port-unreachable' : code === 1 || code === 5 || code === 6 ? 'prohibited' : 'other';
  return 'other';
}

const KERNEL_WORDS: Partial<Record<DropReason, string>> = {
  'no-route': 'the node has no route to the destination',
  'host-unreachable': 'the destination is unreachable: no route to that host, or its neighbour (ARP/ND) did not answer',
  'port-unreachable': 'nothing listens on that port',
  prohibited: 'a route or firewall prohibits it',
};

function protocolName(h: PacketHeaders): string {
  return h.protocol === 'other' ? String(h.protocolNumber) : h.protocol;
}

function endOf(s: Snapshot | undefined, address: string, port: number | undefined): FlowEnd {
  const end: FlowEnd = { address, ...(port !== undefined ? { port } : {}) };
  if (!s) return end;
  const h = hostOf(s, address);
  if (h.kind === 'pod') {
    end.pod = endpointKey(h.endpoint);
    end.namespace = h.endpoint.namespace;
    if (h.endpoint.node) end.node = h.endpoint.node;
    // Shared with the snapshot, not copied: a ring of thousands of records holds one copy of each pod's labels.
    if (Object.keys(h.endpoint.labels).length) end.labels = h.endpoint.labels;
  } else if (h.kind === 'node') end.node = h.node.name;
  return end;
}

/** The evaluator's protocol for a packet (ICMPv6 is ICMP to policy). */
function flowProtocol(h: PacketHeaders): FlowProtocol | undefined {
  if (h.protocol === 'TCP' || h.protocol === 'UDP' || h.protocol === 'SCTP') return h.protocol;
  if (h.protocol === 'ICMP' || h.protocol === 'ICMPv6') return 'ICMP';
  return undefined;
}

/** The deciding rule of a policy drop, in trace's words, and the policies named. */
function explainDrop(s: Snapshot, h: PacketHeaders, direction: 'ingress' | 'egress'): { explanation: string; policies: string[] } | undefined {
  const protocol = flowProtocol(h);
  if (!protocol) return undefined;
  const src: Host = hostOf(s, h.src);
  const dst: Host = hostOf(s, h.dst);
  const v = evaluate(s, { src, dst, protocol, ...(protocol !== 'ICMP' && h.dstPort !== undefined ? { port: h.dstPort } : {}) });
  const dv = v[direction];
  if (dv.allowed) return { explanation: `dropped by the policy table in force then; the policies in force now allow ${direction} (a change was on its way)`, policies: [] };
  const [first, ...misses] = directionLines(s, dv, direction === 'egress' ? dst : src).map((l) => l.trim());
  const explanation = [first?.replace(/:$/, ''), ...misses.filter((m) => m.startsWith('- ')).map((m) => m.slice(2))].filter(Boolean).join('; ');
  const policies = dv.decision === 'cluster-policy' && dv.by ? [`WeftClusterPolicy ${dv.by.name}`] : dv.isolatedBy;
  return { explanation, policies };
}

/**
 * The record for one packet seen at `node`, at `timeMs`; undefined for a line that is none of
 * Weft's (another group, an undecodable packet).
 */
export function flowRecordOf(p: NflogPacket, node: string, timeMs: number, s: Snapshot | undefined): FlowRecord | undefined {
  const outer = decodePacket(p.payload);
  if (!outer) return undefined;
  let h = outer;
  let verdict: FlowRecord['verdict'] = 'forwarded';
  let direction: FlowRecord['direction'];
  let dropReason: DropReason | undefined;
  let explanation: string | undefined;
  let policies: string[] | undefined;
  const isLocalPod = (addr: string): boolean => {
    if (!s) return false;
    const host = hostOf(s, addr);
    return host.kind === 'pod' && host.endpoint.node === node;
  };
  if (p.group === FLOW_GROUPS.drop) {
    const known = PREFIXES.get(p.prefix);
    if (!known) return undefined;
    verdict = 'dropped';
    direction = known.direction;
    dropReason = known.reason;
    if (known.reason === 'unknown-address') explanation = `${direction === 'egress' ? h.src : h.dst} is in this node's pod ranges but no attached pod has it (not yet attached, or a spoofed source)`;
    else if (s) ({ explanation, policies } = explainDrop(s, h, direction) ?? {});
  } else if (p.group === FLOW_GROUPS.forward) {
    direction = isLocalPod(h.src) ? 'egress' : 'ingress';
  } else if (p.group === FLOW_GROUPS.kernel) {
    // The node's ICMP error to a local pod: the record is of the packet it refused.
    if (!outer.inner) return undefined;
    h = outer.inner;
    verdict = 'dropped';
    direction = 'egress';
    dropReason = kernelReason(outer);
    explanation = dropReason === 'too-big' ? `larger than the path allows (MTU ${mtuOf(outer)}) with "don't fragment" set` : KERNEL_WORDS[dropReason];
  } else return undefined;
  const record: FlowRecord = {
    time: new Date(timeMs).toISOString(),
    node,
    verdict,
    direction,
    family: h.family,
    protocol: protocolName(h),
    source: endOf(s, h.src, h.srcPort),
    destination: endOf(s, h.dst, h.dstPort),
  };
  if (h.tcpFlags) record.tcpFlags = h.tcpFlags;
  if (h.icmp) record.icmp = h.icmp;
  if (dropReason) record.dropReason = dropReason;
  if (explanation) record.explanation = explanation;
  if (policies?.length) record.policies = policies;
  if (p.inDev || p.outDev) record.interfaces = { ...(p.inDev ? { in: p.inDev } : {}), ...(p.outDev ? { out: p.outDev } : {}) };
  return record;
}

/** The next-hop MTU an ICMP "fragmentation needed" or ICMPv6 "packet too big" names (bytes 6-7 / 4-7). */
function mtuOf(h: PacketHeaders): string {
  return h.mtu === undefined ? 'unknown' : String(h.mtu);
}
