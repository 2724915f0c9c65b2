import { canonicalAddress, isValidAddress } from '../ipam/cidr.js';
import { UserError } from '../util/user-error.js';
import { describeHost, evaluate, hostOf, type DirectionVerdict, type FlowProtocol, type Host, type RuleRef, type Verdict } from './evaluate.js';
import type { Endpoint, Peer, PortMatch, Snapshot } from './ir.js';
import { endpointKey } from './ir.js';
import { describePeer } from './selector.js';

/**
 * What `weft policy trace|matrix|diff` compute, without I/O: resolving the ends a user names,
 * the text of a verdict, the evaluated matrix, and the flows a change would open or close.
 */
export type Family = 4 | 6;

export interface FlowCase {
  protocol: FlowProtocol;
  /** Absent for ICMP. */
  port?: number;
  family: Family;
}

/** "80/TCP", "53/udp", "icmp" → protocol and port. */
export function parseFlowSpec(text: string): { protocol: FlowProtocol; port?: number } {
  if (/^icmp(v6)?$/i.test(text)) return { protocol: 'ICMP' };
  const m = /^(\d{1,5})\/(tcp|udp|sctp)$/i.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw new UserError(`${JSON.stringify(text)}: expected PORT/PROTOCOL (PORT 1-65535, PROTOCOL TCP, UDP or SCTP, e.g. 80/TCP) or ICMP`);
  return { protocol: (m[2] as string).toUpperCase() as FlowProtocol, port };
}

const familyOf = (address: string): Family => (address.includes(':') ? 6 : 4);

type Named = { kind: 'pod'; endpoint: Endpoint } | { kind: 'node'; name: string; addresses: string[] } | { kind: 'address'; address: string };

function lookup(s: Snapshot, spec: string): Named {
  if (isValidAddress(spec)) return { kind: 'address', address: canonicalAddress(spec) };
  if (spec.includes('/')) {
    const ep = s.endpoints.find((e) => endpointKey(e) === spec);
    if (!ep) {
      const known = s.endpoints.map(endpointKey);
      throw new UserError(`no pod ${spec} with an address in the datastore${known.length ? ` (pods: ${known.slice(0, 12).join(', ')}${known.length > 12 ? ', …' : ''})` : ' (it has no pods)'}`);
    }
    return { kind: 'pod', endpoint: ep };
  }
  const node = s.nodes.find((n) => n.name === spec);
  if (!node) throw new UserError(`${JSON.stringify(spec)} is no pod, node or address: expected NAMESPACE/POD, a node name${s.nodes.length ? ` (${s.nodes.map((n) => n.name).join(', ')})` : ''}, or an IP address`);
  return { kind: 'node', name: node.name, addresses: node.addresses };
}

function addressesOf(n: Named): string[] {
  return n.kind === 'pod' ? n.endpoint.addresses : n.kind === 'node' ? n.addresses : [n.address];
}

/**
 * Both ends of a trace, as addresses of one family: an explicit address fixes the family,
 * otherwise `family` (default IPv4 where both ends have it, else IPv6).
 */
export function resolveEnds(s: Snapshot, src: string, dst: string, family?: Family): { src: Host; dst: Host; family: Family } {
  const a = lookup(s, src);
  const b = lookup(s, dst);
  const fixed = [a, b].filter((x): x is Extract<Named, { kind: 'address' }> => x.kind === 'address').map((x) => familyOf(x.address));
  if (fixed.length === 2 && fixed[0] !== fixed[1]) throw new UserError(`${src} and ${dst} are of different address families`);
  const has = (n: Named, f: Family): boolean => addressesOf(n).some((x) => familyOf(x) === f);
  const fam: Family = fixed[0] ?? family ?? (has(a, 4) && has(b, 4) ? 4 : 6);
  if (family && fixed[0] && family !== fixed[0]) throw new UserError(`--family ${family} contradicts the IPv${fixed[0]} address given`);
  const pick = (n: Named, spec: string): Host => {
    const address = addressesOf(n).find((x) => familyOf(x) === fam);
    if (!address) throw new UserError(`${spec} has no IPv${fam} address (it has ${addressesOf(n).join(', ') || 'none'})`);
    return hostOf(s, address);
  };
  return { src: pick(a, src), dst: pick(b, dst), family: fam };
}

// --- trace text ---

export function describePortMatch(pm: PortMatch): string {
  if (pm.name !== undefined) return `${pm.name}/${pm.protocol}`;
  if (pm.port === undefined) return `all ${pm.protocol} ports`;
  return `${pm.port}${pm.endPort !== undefined ? `-${pm.endPort}` : ''}/${pm.protocol}`;
}

function describeRuleBody(peers: Peer[] | 'any', ports: PortMatch[] | 'any', direction: 'ingress' | 'egress'): string {
  const who = peers === 'any' ? (direction === 'ingress' ? 'from anywhere' : 'to anywhere') : `${direction === 'ingress' ? 'from' : 'to'} ${peers.map(describePeer).join(' or ')}`;
  const what = ports === 'any' ? 'on any port' : `on ${ports.map(describePortMatch).join(', ')}`;
  return `${who}, ${what}`;
}

/** "NetworkPolicy y/allow-x ingress[0] (from …, on …)" — the rule, found again in the snapshot. */
export function describeRule(s: Snapshot, ref: RuleRef): string {
  if (ref.kind === 'NetworkPolicy') {
    const p = s.policies.find((x) => x.namespace === ref.namespace && x.name === ref.name);
    const r = p?.[ref.direction]?.find((x) => x.index === ref.rule);
    return `NetworkPolicy ${ref.namespace}/${ref.name} ${ref.direction}[${ref.rule}]${r ? ` (${describeRuleBody(r.peers, r.ports, ref.direction)})` : ''}`;
  }
  const cp = s.clusterPolicies.find((x) => x.name === ref.name);
  const r = cp?.[ref.direction].find((x) => x.index === ref.rule);
  const label = `${ref.direction}[${ref.rule}]${ref.ruleName ? ` "${ref.ruleName}"` : ''}`;
  return `WeftClusterPolicy ${ref.name}${cp ? ` (priority ${cp.priority})` : ''} ${label}: ${ref.action}${r ? ` ${describeRuleBody(r.peers, r.ports, ref.direction)}` : ''}`;
}

function describeEnd(h: Host): string {
  if (h.kind === 'pod') return `${endpointKey(h.endpoint)} (${h.address}${h.endpoint.node ? ` on ${h.endpoint.node}` : ''})`;
  if (h.kind === 'node') return `node ${h.node.name} (${h.address})`;
  return h.address;
}

/** One direction's verdict, one line, then the misses. */
function directionLines(s: Snapshot, v: DirectionVerdict, other: Host): string[] {
  const at = v.direction === 'egress' ? `egress from ${v.subject ?? describeHost(other)}` : `ingress to ${v.subject ?? describeHost(other)}`;
  const verdict = v.allowed ? 'allowed' : 'BLOCKED';
  const passed = v.passedBy ? [`      first ${describeRule(s, v.passedBy)} — passed on to NetworkPolicies`] : [];
  switch (v.decision) {
    case 'not-a-pod':
      return [`  ${v.direction}: allowed — that end is no pod, nothing is enforced there`];
    case 'loopback':
      return [`  ${at}: allowed — a pod reaching itself never leaves it`];
    case 'own-node':
      return [`  ${at}: allowed — a node always reaches its own pods (kubelet probes)`];
    case 'cluster-policy':
      return [`  ${at}: ${verdict} by ${describeRule(s, v.by as RuleRef)}`];
    case 'not-isolated':
      return [`  ${at}: allowed — no NetworkPolicy selects ${v.subject} for ${v.direction}, so it is not isolated`, ...passed];
    case 'network-policy':
      return [`  ${at}: allowed by ${describeRule(s, v.by as RuleRef)}`, `      (isolated by ${v.isolatedBy.join(', ')})`, ...passed];
    case 'no-rule':
      return [`  ${at}: BLOCKED — isolated by ${v.isolatedBy.join(', ')}, and no rule of theirs allows it:`, ...v.misses.map((m) => `      - ${m}`), ...passed];
  }
}

export function traceLines(s: Snapshot, flow: { src: Host; dst: Host; protocol: FlowProtocol; port?: number }, v: Verdict): string[] {
  const what = flow.protocol === 'ICMP' ? 'ICMP' : `${flow.protocol} port ${flow.port}`;
  return [
    `${what} from ${describeEnd(flow.src)} to ${describeEnd(flow.dst)}: ${v.allowed ? 'ALLOWED' : 'BLOCKED'}`,
    ...directionLines(s, v.egress, flow.src),
    ...directionLines(s, v.ingress, flow.dst),
    ...(v.allowed ? ['  replies of this connection pass both ways (conntrack)'] : []),
  ];
}

// --- evaluated matrix ---

export interface EvaluatedCell {
  from: string;
  to: string;
  protocol: FlowProtocol;
  port?: number;
  family: Family;
  allowed: boolean;
}

/** Every pod to every pod (itself too), for each case, where both ends have the family. */
export function evaluatedMatrix(s: Snapshot, cases: FlowCase[], pods: Endpoint[] = s.endpoints): EvaluatedCell[] {
  const out: EvaluatedCell[] = [];
  for (const c of cases) {
    for (const a of pods) {
      const sa = a.addresses.find((x) => familyOf(x) === c.family);
      if (!sa) continue;
      for (const b of pods) {
        const da = b.addresses.find((x) => familyOf(x) === c.family);
        if (!da) continue;
        const v = evaluate(s, { src: { kind: 'pod', address: sa, endpoint: a }, dst: { kind: 'pod', address: da, endpoint: b }, protocol: c.protocol, ...(c.port !== undefined ? { port: c.port } : {}) });
        out.push({ from: endpointKey(a), to: endpointKey(b), protocol: c.protocol, ...(c.port !== undefined ? { port: c.port } : {}), family: c.family, allowed: v.allowed });
      }
    }
  }
  return out;
}

// --- diff ---

const PORT_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

/**
 * The port ranges of one protocol inside which no verdict can differ: every port a rule or a
 * pod names starts a range and ends one. Checking one port per range covers all 65535.
 */
export function portSegments(snapshots: Snapshot[], protocol: (typeof PORT_PROTOCOLS)[number]): Array<[number, number]> {
  const cuts = new Set<number>([1]);
  const single = (p: number): void => {
    cuts.add(p);
    cuts.add(p + 1);
  };
  const addMatch = (pm: PortMatch): void => {
    if (pm.protocol !== protocol || pm.port === undefined) return;
    cuts.add(pm.port);
    cuts.add((pm.endPort ?? pm.port) + 1);
  };
  for (const s of snapshots) {
    for (const p of s.policies) for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) if (r.ports !== 'any') r.ports.forEach(addMatch);
    for (const c of s.clusterPolicies) for (const r of [...c.ingress, ...c.egress]) if (r.ports !== 'any') r.ports.forEach(addMatch);
    for (const e of s.endpoints) for (const np of e.ports) if (np.protocol === protocol) single(np.port);
  }
  const sorted = [...cuts].filter((p) => p >= 1 && p <= 65535).sort((a, b) => a - b);
  return sorted.map((lo, i) => [lo, (sorted[i + 1] ?? 65536) - 1]);
}

export interface FlowChange {
  from: string;
  to: string;
  change: 'opens' | 'closes';
  /** "TCP 80", "TCP 1-79, 81-65535", "UDP all ports", "ICMP". */
  what: string[];
  families: Family[];
  /** Why, after the change. */
  reason: string;
}

function shortReason(s: Snapshot, v: Verdict): string {
  const d = [v.egress, v.ingress].find((x) => (v.allowed ? x.decision === 'cluster-policy' || x.decision === 'network-policy' : !x.allowed)) ?? v.ingress;
  if (d.decision === 'cluster-policy' || d.decision === 'network-policy') return `${d.direction} ${d.allowed ? 'allowed' : 'denied'} by ${describeRule(s, d.by as RuleRef)}`;
  if (d.decision === 'no-rule') return `${d.direction} of ${d.subject} isolated by ${d.isolatedBy.join(', ')}; no rule allows`;
  return 'no policy isolates either end';
}

function rangesText(protocol: string, ranges: Array<[number, number]>): string {
  const merged: Array<[number, number]> = [];
  for (const [lo, hi] of ranges) {
    const last = merged[merged.length - 1];
    if (last && last[1] + 1 === lo) last[1] = hi;
    else merged.push([lo, hi]);
  }
  if (merged.length === 1 && merged[0]?.[0] === 1 && merged[0][1] === 65535) return `${protocol} all ports`;
  return `${protocol} ${merged.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(', ')}`;
}

/**
 * Which pod-to-pod flows change verdict from `before` to `after`: every ordered pair of pods
 * present in both (a pod only in one has no flows to compare), every family both have, every
 * port of TCP/UDP/SCTP (by segments) and ICMP. Grouped per pair, change and reason.
 */
export function flowDiff(before: Snapshot, after: Snapshot): FlowChange[] {
  const keys = new Map(before.endpoints.map((e) => [endpointKey(e), e]));
  const pods = after.endpoints.filter((e) => keys.has(endpointKey(e))).map((e) => ({ after: e, before: keys.get(endpointKey(e)) as Endpoint }));
  const segments = new Map(PORT_PROTOCOLS.map((p) => [p, portSegments([before, after], p)]));
  const groups = new Map<string, { change: FlowChange; ranges: Map<string, Array<[number, number]>>; family: Family }>();
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      for (const family of [4, 6] as const) {
        const ends = (s: Snapshot, x: Endpoint, y: Endpoint): { src: Host; dst: Host } | undefined => {
          const sa = x.addresses.find((z) => familyOf(z) === family);
          const da = y.addresses.find((z) => familyOf(z) === family);
          return sa && da ? { src: hostOf(s, sa), dst: hostOf(s, da) } : undefined;
        };
        const e0 = ends(before, a.before, b.before);
        const e1 = ends(after, a.after, b.after);
        if (!e0 || !e1) continue;
        const check = (protocol: FlowProtocol, range?: [number, number]): void => {
          const port = range?.[0];
          const flow = { protocol, ...(port !== undefined ? { port } : {}) };
          const v0 = evaluate(before, { ...e0, ...flow });
          const v1 = evaluate(after, { ...e1, ...flow });
          if (v0.allowed === v1.allowed) return;
          const change = v1.allowed ? 'opens' : 'closes';
          const reason = shortReason(after, v1);
          const key = `${endpointKey(a.after)}|${endpointKey(b.after)}|${family}|${change}|${reason}`;
          let g = groups.get(key);
          if (!g) {
            g = { change: { from: endpointKey(a.after), to: endpointKey(b.after), change, what: [], families: [family], reason }, ranges: new Map(), family };
            groups.set(key, g);
          }
          const list = g.ranges.get(protocol) ?? [];
          if (range && !list.some(([lo]) => lo === range[0])) list.push(range);
          g.ranges.set(protocol, list);
        };
        for (const p of PORT_PROTOCOLS) for (const seg of segments.get(p) ?? []) check(p, seg);
        check('ICMP');
      }
    }
  }
  // The same change over IPv4 and IPv6 is one line.
  const merged = new Map<string, FlowChange>();
  for (const g of groups.values()) {
    const what = [...g.ranges.entries()].map(([proto, ranges]) => (proto === 'ICMP' ? 'ICMP' : rangesText(proto, ranges.sort((x, y) => x[0] - y[0]))));
    const key = `${g.change.from}|${g.change.to}|${g.change.change}|${g.change.reason}|${what.join(';')}`;
    const cur = merged.get(key);
    if (cur) cur.families = [...cur.families, g.family].sort();
    else merged.set(key, { ...g.change, what });
  }
  return [...merged.values()];
}

/** How `weft policy diff` prints changes. */
export function diffLines(changes: FlowChange[]): string[] {
  if (changes.length === 0) return ['no pod-to-pod flow would change'];
  const lines: string[] = [];
  for (const kind of ['opens', 'closes'] as const) {
    const list = changes.filter((c) => c.change === kind);
    if (list.length === 0) continue;
    lines.push(`would ${kind === 'opens' ? 'OPEN' : 'CLOSE'} (${list.length}):`);
    for (const c of list) lines.push(`  ${c.from} -> ${c.to}  ${c.what.join(', ')}  (IPv${c.families.join('+IPv')})`, `      ${c.reason}`);
  }
  return lines;
}
