import { canonicalAddress, isValidAddress } from '../ipam/cidr.js';
import { UserError } from '../util/user-error.js';
import { describeHost, evaluate, hostOf, isolatingPolicies, peerMatches, selectingClusterPolicies, type DirectionVerdict, type FlowProtocol, type Host, type RuleRef, type Verdict } from './evaluate.js';
import type { Endpoint, Peer, PortMatch, Snapshot } from './ir.js';
import { endpointKey, namespaceLabels } from './ir.js';
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
        const v = evaluate(s, { src: { kind: 'pod', address: sa, endpoint: a }, dst: { kind: 'pod', address: da, endpoint: b }, protocol: c.protocol, ...(c.port !== undefined ? { port: c.port } : {}) }, { explain: false });
        out.push({ from: endpointKey(a), to: endpointKey(b), protocol: c.protocol, ...(c.port !== undefined ? { port: c.port } : {}), family: c.family, allowed: v.allowed });
      }
    }
  }
  return out;
}

// --- diff ---

const PORT_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

/** Ranges between cut points: [1, c1-1], [c1, c2-1], … up to 65535. */
function segmentsFrom(cuts: Set<number>): Array<[number, number]> {
  const sorted = [...cuts, 1].filter((p) => p >= 1 && p <= 65535);
  const uniq = [...new Set(sorted)].sort((a, b) => a - b);
  return uniq.map((lo, i) => [lo, (uniq[i + 1] ?? 65536) - 1]);
}

function addCuts(cuts: Set<number>, pm: PortMatch, protocol: string): void {
  if (pm.protocol !== protocol || pm.port === undefined) return;
  cuts.add(pm.port);
  cuts.add((pm.endPort ?? pm.port) + 1);
}

/**
 * The port ranges of one protocol inside which no verdict can differ: every port a rule or a
 * pod names starts a range and ends one. Checking one port per range covers all 65535.
 */
export function portSegments(snapshots: Snapshot[], protocol: (typeof PORT_PROTOCOLS)[number]): Array<[number, number]> {
  const cuts = new Set<number>();
  for (const s of snapshots) {
    for (const p of s.policies) for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) if (r.ports !== 'any') r.ports.forEach((pm) => addCuts(cuts, pm, protocol));
    for (const c of s.clusterPolicies) for (const r of [...c.ingress, ...c.egress]) if (r.ports !== 'any') r.ports.forEach((pm) => addCuts(cuts, pm, protocol));
    for (const e of s.endpoints) for (const np of e.ports) if (np.protocol === protocol) addCuts(cuts, { protocol, port: np.port }, protocol);
  }
  return segmentsFrom(cuts);
}

/**
 * The same for one flow's ends: only the rules the evaluator can reach for them (policies
 * selecting the source for egress or the destination for ingress) and the destination's
 * named ports can make the verdict depend on the port.
 */
function pairSegments(snapshots: Array<{ s: Snapshot; src: Endpoint; dst: Endpoint }>, protocol: (typeof PORT_PROTOCOLS)[number]): Array<[number, number]> {
  const cuts = new Set<number>();
  const rules = (list: Array<{ ports: PortMatch[] | 'any' }>): void => {
    for (const r of list) if (r.ports !== 'any') r.ports.forEach((pm) => addCuts(cuts, pm, protocol));
  };
  for (const { s, src, dst } of snapshots) {
    for (const p of isolatingPolicies(s, src, 'egress')) rules(p.egress ?? []);
    for (const p of isolatingPolicies(s, dst, 'ingress')) rules(p.ingress ?? []);
    for (const c of selectingClusterPolicies(s, src)) rules(c.egress);
    for (const c of selectingClusterPolicies(s, dst)) rules(c.ingress);
    for (const np of dst.ports) if (np.protocol === protocol) addCuts(cuts, { protocol, port: np.port }, protocol);
  }
  return segmentsFrom(cuts);
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

/** Why a flow is allowed or not after the change, in one line; the pods named are `from` and `to`. */
function shortReason(s: Snapshot, v: Verdict, from: string, to: string): string {
  const d = [v.egress, v.ingress].find((x) => (v.allowed ? x.decision === 'cluster-policy' || x.decision === 'network-policy' : !x.allowed)) ?? v.ingress;
  if (d.decision === 'cluster-policy' || d.decision === 'network-policy') return `${d.direction} ${d.allowed ? 'allowed' : 'denied'} by ${describeRule(s, d.by as RuleRef)}`;
  if (d.decision === 'no-rule') return `${d.direction} of ${d.direction === 'egress' ? from : to} isolated by ${d.isolatedBy.join(', ')}; no rule allows`;
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

/** Every ipBlock peer the snapshots' rules name: an address's membership in each is all policy sees of it. */
function ipBlockPeers(snapshots: Snapshot[]): Array<Extract<Peer, { kind: 'ipBlock' }>> {
  const out = new Map<string, Extract<Peer, { kind: 'ipBlock' }>>();
  const add = (peers: Peer[] | 'any'): void => {
    if (peers !== 'any') for (const p of peers) if (p.kind === 'ipBlock') out.set(`${p.cidr}|${p.except.join(',')}`, p);
  };
  for (const s of snapshots) {
    for (const p of s.policies) for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) add(r.peers);
    for (const c of s.clusterPolicies) for (const r of [...c.ingress, ...c.egress]) add(r.peers);
  }
  return [...out.values()];
}

/**
 * Which pod-to-pod flows change verdict from `before` to `after`: every ordered pair of pods
 * present in both (a pod only in one has no flows to compare), every family both have, every
 * port of TCP/UDP/SCTP (by segments) and ICMP. Grouped per pair, change and reason.
 *
 * Exact, and cheap where it can be: a flow's verdict depends only on what policy sees of its two
 * ends — labels, namespace labels, named ports, node, which ipBlocks hold the address, and the
 * policies selecting each — so pods alike in all of that (replicas) form one class, evaluated
 * once per class pair, and pairs of two classes nothing changed for are skipped.
 */
export function flowDiff(before: Snapshot, after: Snapshot): FlowChange[] {
  const keys = new Map(before.endpoints.map((e) => [endpointKey(e), e]));
  const pods = after.endpoints.filter((e) => keys.has(endpointKey(e))).map((e) => ({ after: e, before: keys.get(endpointKey(e)) as Endpoint }));
  type Pod = (typeof pods)[number];
  const blocks = ipBlockPeers([before, after]);
  const view = (s: Snapshot, e: Endpoint, address: string): unknown[] => [
    e.namespace,
    e.labels,
    namespaceLabels(s, e.namespace),
    e.ports,
    e.node ?? null,
    blocks.map((b) => peerMatches(s, b, { kind: 'address', address })),
    selectingClusterPolicies(s, e),
    isolatingPolicies(s, e, 'ingress'),
    isolatingPolicies(s, e, 'egress'),
  ];
  const changes = new Map<string, { change: FlowChange; ranges: Map<string, Array<[number, number]>> }>();
  const record = (from: Pod, to: Pod, family: Family, change: 'opens' | 'closes', reason: string, protocol: FlowProtocol, range?: [number, number]): void => {
    const key = `${endpointKey(from.after)}|${endpointKey(to.after)}|${family}|${change}|${reason}`;
    let g = changes.get(key);
    if (!g) {
      g = { change: { from: endpointKey(from.after), to: endpointKey(to.after), change, what: [], families: [family], reason }, ranges: new Map() };
      changes.set(key, g);
    }
    const list = g.ranges.get(protocol) ?? [];
    if (range && !list.some(([lo]) => lo === range[0])) list.push(range);
    g.ranges.set(protocol, list);
  };

  for (const family of [4, 6] as const) {
    const classes = new Map<string, { members: Array<{ pod: Pod; src0: string; src1: string }>; changed: boolean }>();
    for (const pod of pods) {
      const a0 = pod.before.addresses.find((z) => familyOf(z) === family);
      const a1 = pod.after.addresses.find((z) => familyOf(z) === family);
      if (!a0 || !a1) continue;
      const v0 = JSON.stringify(view(before, pod.before, a0));
      const v1 = JSON.stringify(view(after, pod.after, a1));
      const key = `${v0}\n${v1}`;
      const c = classes.get(key) ?? { members: [], changed: v0 !== v1 };
      c.members.push({ pod, src0: a0, src1: a1 });
      classes.set(key, c);
    }
    const list = [...classes.values()];
    for (const A of list) {
      for (const B of list) {
        if (!A.changed && !B.changed) continue;
        const x = A.members[0];
        const y = A === B ? A.members[1] : B.members[0];
        if (!x || !y) continue; // a class of one pod has no pair within itself
        const at = (which: 'before' | 'after'): { src: Host; dst: Host } => ({
          src: { kind: 'pod', address: which === 'before' ? x.src0 : x.src1, endpoint: x.pod[which] },
          dst: { kind: 'pod', address: which === 'before' ? y.src0 : y.src1, endpoint: y.pod[which] },
        });
        const e0 = at('before');
        const e1 = at('after');
        const found: Array<{ protocol: FlowProtocol; range?: [number, number]; change: 'opens' | 'closes'; verdict: Verdict }> = [];
        const check = (protocol: FlowProtocol, range?: [number, number]): void => {
          const flow = { protocol, ...(range ? { port: range[0] } : {}) };
          const v0 = evaluate(before, { ...e0, ...flow }, { explain: false });
          const v1 = evaluate(after, { ...e1, ...flow }, { explain: false });
          if (v0.allowed !== v1.allowed) found.push({ protocol, ...(range ? { range } : {}), change: v1.allowed ? 'opens' : 'closes', verdict: v1 });
        };
        const pair = [
          { s: before, src: x.pod.before, dst: y.pod.before },
          { s: after, src: x.pod.after, dst: y.pod.after },
        ];
        for (const p of PORT_PROTOCOLS) for (const seg of pairSegments(pair, p)) check(p, seg);
        check('ICMP');
        if (found.length === 0) continue;
        // Every pod pair of the two classes changes alike; the reason names each pair's own pods.
        for (const from of A.members) {
          for (const to of B.members) {
            if (from === to) continue;
            for (const f of found) record(from.pod, to.pod, family, f.change, shortReason(after, f.verdict, endpointKey(from.pod.after), endpointKey(to.pod.after)), f.protocol, f.range);
          }
        }
      }
    }
  }
  // The same change over IPv4 and IPv6 is one line.
  const merged = new Map<string, FlowChange>();
  for (const g of changes.values()) {
    const what = [...g.ranges.entries()].map(([proto, ranges]) => (proto === 'ICMP' ? 'ICMP' : rangesText(proto, ranges.sort((x, y) => x[0] - y[0]))));
    const key = `${g.change.from}|${g.change.to}|${g.change.change}|${g.change.reason}|${what.join(';')}`;
    const cur = merged.get(key);
    if (cur) cur.families = [...cur.families, ...g.change.families].sort();
    else merged.set(key, { ...g.change, what });
  }
  return [...merged.values()].sort((a, b) => (a.from === b.from ? (a.to < b.to ? -1 : 1) : a.from < b.from ? -1 : 1));
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
