import { canonicalAddress, isValidAddress } from '../ipam/cidr.js';
import { UserError } from '../util/user-error.js';
import { describeHost, evaluate, hostOf, type DirectionVerdict, type FlowProtocol, type Host, type RuleRef, type Verdict } from './evaluate.js';
import type { Endpoint, Peer, PortMatch, Snapshot } from './ir.js';
import { endpointKey } from './ir.js';
import { describePeer } from './selector.js';

/**
 * What `weft policy trace|matrix` compute, without I/O: resolving the ends a user names, the
 * text of a verdict and of a rule, and the evaluated matrix (`weft policy diff`: flow-diff.ts).
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

/** One direction's verdict, one line, then the misses (also what flow records say of a drop). */
export function directionLines(s: Snapshot, v: DirectionVerdict, other: Host): string[] {
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
