/**
 * `weft policy diff`, without I/O: which pod-to-pod flows a change opens or closes — every
 * ordered pair of pods present before and after, every family both have, every port of
 * TCP/UDP/SCTP and ICMP — grouped per pair, change and reason.
 *
 * A flow's verdict is egress(source) ∧ ingress(destination). Each direction depends only on
 * what policy sees of its subject (the policies selecting it, its named ports) and of the other
 * end (namespace, labels, namespace labels, named ports, which ipBlocks hold its address). So
 * each direction is computed once per (subject view, other-end view) as a map over ports, and
 * only pairs with an end whose view changed are compared: at 1000 pods a one-namespace change
 * is tens of thousands of map lookups, not millions of evaluations. The maps follow
 * `evaluate.ts` rule for rule; a property test holds this diff equal to evaluating every flow.
 */
import { describeRule, type Family } from './explain.js';
import { isolatingPolicies, peerMatches, portMatches, selectingClusterPolicies, type DirectionVerdict, type Flow, type FlowProtocol, type Host, type RuleRef } from './evaluate.js';
import type { ClusterPolicy, ClusterRule, Endpoint, Peer, Policy, Rule, Snapshot } from './ir.js';
import { endpointKey, namespaceLabels } from './ir.js';

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

const PORT_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
type PortProtocol = (typeof PORT_PROTOCOLS)[number];

/** One direction's verdict over ports: segments from 1 to 65535 (starts ascending), and ICMP. */
interface PortMap {
  ports: Record<PortProtocol, Array<{ lo: number; v: DirectionVerdict }>>;
  icmp: DirectionVerdict;
}

const familyOf = (address: string): Family => (address.includes(':') ? 6 : 4);

/**
 * One direction for a subject pod and the other end, over all ports: the rules whose peers
 * match are found once, then each port segment they cut is decided as `evaluateDirection`
 * decides one port — cluster policies by priority (the first matching rule decides, Pass hands
 * over), then the isolating NetworkPolicies (any matching rule allows).
 */
function directionMap(s: Snapshot, direction: 'ingress' | 'egress', subject: Endpoint, other: Host, dst: Host): PortMap {
  const cluster: Array<{ cp: ClusterPolicy; r: ClusterRule }> = [];
  for (const cp of selectingClusterPolicies(s, subject)) for (const r of cp[direction]) if (r.peers.some((p) => peerMatches(s, p, other))) cluster.push({ cp, r });
  const isolating = isolatingPolicies(s, subject, direction);
  const isolatedBy = isolating.map((p) => `${p.namespace}/${p.name}`);
  const allowing: Array<{ p: Policy; r: Rule }> = [];
  for (const p of isolating) for (const r of p[direction] ?? []) if (r.peers === 'any' || r.peers.some((peer: Peer) => peerMatches(s, peer, other))) allowing.push({ p, r });

  const base = { direction, isolatedBy: [] as string[], misses: [] as string[] };
  const npVerdict = new Map<Rule | null, DirectionVerdict>();
  const decide = (flow: Flow): DirectionVerdict => {
    let passedBy: RuleRef | undefined;
    for (const { cp, r } of cluster) {
      if (r.ports !== 'any' && !r.ports.some((pm) => portMatches(pm, flow))) continue;
      const ref: RuleRef = { kind: 'WeftClusterPolicy', name: cp.name, direction, rule: r.index, ...(r.name ? { ruleName: r.name } : {}), action: r.action };
      if (r.action === 'Pass') {
        passedBy = ref;
        break;
      }
      return { ...base, allowed: r.action === 'Allow', decision: 'cluster-policy', by: ref };
    }
    const pass = passedBy ? { passedBy } : {};
    if (isolating.length === 0) return { ...base, ...pass, allowed: true, decision: 'not-isolated' };
    const hit = allowing.find(({ r }) => r.ports === 'any' || r.ports.some((pm) => portMatches(pm, flow)));
    // Verdicts without a Pass are shared between segments, so that equal reasons are one object.
    const cached = passedBy ? undefined : npVerdict.get(hit?.r ?? null);
    if (cached) return cached;
    const v: DirectionVerdict = hit
      ? { ...base, ...pass, isolatedBy, allowed: true, decision: 'network-policy', by: { kind: 'NetworkPolicy', namespace: hit.p.namespace, name: hit.p.name, direction, rule: hit.r.index } }
      : { ...base, ...pass, isolatedBy, allowed: false, decision: 'no-rule' };
    if (!passedBy) npVerdict.set(hit?.r ?? null, v);
    return v;
  };

  const ports = {} as PortMap['ports'];
  for (const protocol of PORT_PROTOCOLS) {
    // Only the matching rules' ports (names resolved on the destination) can change the verdict.
    const cuts = new Set<number>([1]);
    const cut = (list: Rule['ports']): void => {
      if (list === 'any') return;
      for (const pm of list) {
        if (pm.protocol !== protocol) continue;
        if (pm.name !== undefined) {
          if (dst.kind === 'pod') for (const np of dst.endpoint.ports) if (np.name === pm.name && np.protocol === protocol) cuts.add(np.port).add(np.port + 1);
        } else if (pm.port !== undefined) cuts.add(pm.port).add((pm.endPort ?? pm.port) + 1);
      }
    };
    for (const { r } of cluster) cut(r.ports);
    for (const { r } of allowing) cut(r.ports);
    const starts = [...cuts].filter((p) => p <= 65535).sort((a, b) => a - b);
    const segs: Array<{ lo: number; v: DirectionVerdict }> = [];
    for (const lo of starts) {
      const v = decide({ src: other, dst, protocol, port: lo });
      // Adjacent segments with the same verdict object are one.
      if (segs[segs.length - 1]?.v !== v) segs.push({ lo, v });
    }
    ports[protocol] = segs;
  }
  return { ports, icmp: decide({ src: other, dst, protocol: 'ICMP' }) };
}

/** Allowed at a port for both directions: walks the four maps of a pair (before, after) together. */
function changedRanges(
  b: { eg: PortMap; in: PortMap },
  a: { eg: PortMap; in: PortMap },
  protocol: PortProtocol,
  out: (lo: number, hi: number, opens: boolean, eg: DirectionVerdict, ing: DirectionVerdict) => void,
): void {
  const lists = [b.eg.ports[protocol], b.in.ports[protocol], a.eg.ports[protocol], a.in.ports[protocol]];
  const idx = [0, 0, 0, 0];
  let lo = 1;
  while (lo <= 65535) {
    const cur = lists.map((l, i) => l[idx[i] as number] as { lo: number; v: DirectionVerdict });
    let next = 65536;
    lists.forEach((l, i) => {
      const n = l[(idx[i] as number) + 1];
      if (n && n.lo < next) next = n.lo;
    });
    const was = (cur[0] as { v: DirectionVerdict }).v.allowed && (cur[1] as { v: DirectionVerdict }).v.allowed;
    const now = (cur[2] as { v: DirectionVerdict }).v.allowed && (cur[3] as { v: DirectionVerdict }).v.allowed;
    if (was !== now) out(lo, next - 1, now, (cur[2] as { v: DirectionVerdict }).v, (cur[3] as { v: DirectionVerdict }).v);
    lo = next;
    lists.forEach((l, i) => {
      if (l[(idx[i] as number) + 1]?.lo === lo) idx[i] = (idx[i] as number) + 1;
    });
  }
}

/** Why a flow is allowed or not after the change, in one line; the pods named are `from` and `to`. */
function shortReason(allowed: boolean, eg: DirectionVerdict, ing: DirectionVerdict, from: string, to: string, ruleText: (ref: RuleRef) => string): string {
  const d = [eg, ing].find((x) => (allowed ? x.decision === 'cluster-policy' || x.decision === 'network-policy' : !x.allowed)) ?? ing;
  if (d.decision === 'cluster-policy' || d.decision === 'network-policy') return `${d.direction} ${d.allowed ? 'allowed' : 'denied'} by ${ruleText(d.by as RuleRef)}`;
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

/** What one pod is to policy in one snapshot and family: interned view ids, and the host. */
interface Side {
  host: Extract<Host, { kind: 'pod' }>;
  /** As the other end of a flow. */
  peer: number;
  /** As the subject of its egress and its ingress. */
  egress: number;
  ingress: number;
}

export function flowDiff(before: Snapshot, after: Snapshot): FlowChange[] {
  const keys = new Map(before.endpoints.map((e) => [endpointKey(e), e]));
  const pods = after.endpoints.filter((e) => keys.has(endpointKey(e))).map((e) => ({ key: endpointKey(e), after: e, before: keys.get(endpointKey(e)) as Endpoint }));
  const blocks = ipBlockPeers([before, after]);

  // Views are compared by content across the two snapshots: equal text, equal id.
  const ids = new Map<string, number>();
  const intern = (text: string): number => {
    let id = ids.get(text);
    if (id === undefined) ids.set(text, (id = ids.size));
    return id;
  };
  const contentIds = new WeakMap<object, number>();
  const contentId = (o: object): number => {
    let id = contentIds.get(o);
    if (id === undefined) contentIds.set(o, (id = intern(JSON.stringify(o))));
    return id;
  };
  const membership = new Map<string, string>();
  const blocksHolding = (s: Snapshot, address: string): string => {
    let m = membership.get(address);
    if (m === undefined) membership.set(address, (m = blocks.map((b) => (peerMatches(s, b, { kind: 'address', address }) ? '1' : '0')).join('')));
    return m;
  };
  const side = (s: Snapshot, e: Endpoint, address: string): Side => {
    const cluster = selectingClusterPolicies(s, e).map(contentId).join(',');
    const ports = JSON.stringify(e.ports);
    return {
      host: { kind: 'pod', address, endpoint: e },
      peer: intern(JSON.stringify([e.namespace, e.labels, namespaceLabels(s, e.namespace), ports, blocksHolding(s, address)])),
      egress: intern(`e|${cluster}|${isolatingPolicies(s, e, 'egress').map(contentId).join(',')}`),
      ingress: intern(`i|${cluster}|${isolatingPolicies(s, e, 'ingress').map(contentId).join(',')}|${ports}`),
    };
  };

  // A direction's map depends only on the two views: computed once, whichever snapshot asks.
  const maps = new Map<string, PortMap>();
  const mapFor = (s: Snapshot, direction: 'egress' | 'ingress', subject: Side, other: Side): PortMap => {
    const key = `${direction === 'egress' ? subject.egress : subject.ingress}:${other.peer}`;
    let m = maps.get(key);
    if (!m) maps.set(key, (m = direction === 'egress' ? directionMap(s, 'egress', subject.host.endpoint, other.host, other.host) : directionMap(s, 'ingress', subject.host.endpoint, other.host, subject.host)));
    return m;
  };

  // Rule refs are shared by the maps' verdicts: each is described once.
  const ruleTexts = new WeakMap<RuleRef, string>();
  const ruleText = (ref: RuleRef): string => {
    let t = ruleTexts.get(ref);
    if (t === undefined) ruleTexts.set(ref, (t = describeRule(after, ref)));
    return t;
  };

  const changes = new Map<string, { change: FlowChange; ranges: Map<string, Array<[number, number]>> }>();
  const record = (from: string, to: string, family: Family, change: 'opens' | 'closes', reason: string, protocol: FlowProtocol, range?: [number, number]): void => {
    const key = `${from}|${to}|${family}|${change}|${reason}`;
    let g = changes.get(key);
    if (!g) {
      g = { change: { from, to, change, what: [], families: [family], reason }, ranges: new Map() };
      changes.set(key, g);
    }
    const list = g.ranges.get(protocol) ?? [];
    if (range) list.push(range);
    g.ranges.set(protocol, list);
  };

  for (const family of [4, 6] as const) {
    const list: Array<{ key: string; b: Side; a: Side; srcChanged: boolean; dstChanged: boolean }> = [];
    for (const pod of pods) {
      const a0 = pod.before.addresses.find((z) => familyOf(z) === family);
      const a1 = pod.after.addresses.find((z) => familyOf(z) === family);
      if (!a0 || !a1) continue;
      const b = side(before, pod.before, a0);
      const a = side(after, pod.after, a1);
      list.push({ key: pod.key, b, a, srcChanged: b.egress !== a.egress || b.peer !== a.peer, dstChanged: b.ingress !== a.ingress || b.peer !== a.peer });
    }
    const compare = (x: (typeof list)[number], y: (typeof list)[number]): void => {
      const b = { eg: mapFor(before, 'egress', x.b, y.b), in: mapFor(before, 'ingress', y.b, x.b) };
      const a = { eg: mapFor(after, 'egress', x.a, y.a), in: mapFor(after, 'ingress', y.a, x.a) };
      const note = (protocol: FlowProtocol, opens: boolean, eg: DirectionVerdict, ing: DirectionVerdict, range?: [number, number]): void =>
        record(x.key, y.key, family, opens ? 'opens' : 'closes', shortReason(opens, eg, ing, x.key, y.key, ruleText), protocol, range);
      for (const protocol of PORT_PROTOCOLS) changedRanges(b, a, protocol, (lo, hi, opens, eg, ing) => note(protocol, opens, eg, ing, [lo, hi]));
      const was = b.eg.icmp.allowed && b.in.icmp.allowed;
      const now = a.eg.icmp.allowed && a.in.icmp.allowed;
      if (was !== now) note('ICMP', now, a.eg.icmp, a.in.icmp);
    };
    // Only a pair with an end whose view changed can change: the source as sender, the destination as receiver.
    for (const x of list) {
      for (const y of list) {
        if (x === y || !(x.srcChanged || y.dstChanged)) continue;
        compare(x, y);
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
