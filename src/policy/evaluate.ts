import { cidrContains, parseAddress, parseCidrMasked, type Cidr } from '../ipam/cidr.js';
import type { Action, ClusterPolicy, Endpoint, NodeInfo, Peer, Policy, PortMatch, Protocol, Snapshot } from './ir.js';
import { endpointKey, namespaceLabels, orderedClusterPolicies } from './ir.js';
import { describePeer, matches, peerSelectsPod } from './selector.js';

/**
 * The pure evaluator: the verdict for one flow from the same IR the nftables compiler reads,
 * with the reason — which policies isolate each end, which rule of which policy decided, or
 * why no rule did. `weft policy trace` prints it; a property test holds the kernel to it.
 */
export type FlowProtocol = Protocol | 'ICMP';

/** One end of a flow: a pod, a node, or any other address. */
export type Host =
  | { kind: 'pod'; address: string; endpoint: Endpoint }
  | { kind: 'node'; address: string; node: NodeInfo }
  | { kind: 'address'; address: string };

export interface Flow {
  src: Host;
  dst: Host;
  protocol: FlowProtocol;
  /** Destination port (TCP, UDP, SCTP). */
  port?: number;
}

export interface RuleRef {
  kind: 'NetworkPolicy' | 'WeftClusterPolicy';
  namespace?: string;
  name: string;
  direction: 'ingress' | 'egress';
  rule: number;
  ruleName?: string;
  action?: Action;
}

export type Decision =
  | 'not-a-pod' // the end is no pod: nothing to enforce on it
  | 'loopback' // a pod talking to itself never leaves it
  | 'own-node' // the node reaches its own pods (kubelet probes)
  | 'cluster-policy' // a WeftClusterPolicy rule allowed or denied
  | 'not-isolated' // no NetworkPolicy isolates this direction
  | 'network-policy' // a NetworkPolicy rule allowed
  | 'no-rule'; // isolated, and no rule allows

export interface DirectionVerdict {
  direction: 'egress' | 'ingress';
  /** The pod whose policy this is, "ns/name". */
  subject?: string;
  allowed: boolean;
  decision: Decision;
  /** The rule that decided (cluster-policy, network-policy). */
  by?: RuleRef;
  /** Cluster policy rules that passed the decision down to NetworkPolicies. */
  passedBy?: RuleRef;
  /** NetworkPolicies isolating the subject in this direction, "ns/name". */
  isolatedBy: string[];
  /** For each rule of an isolating policy that did not match: why not. */
  misses: string[];
}

export interface Verdict {
  allowed: boolean;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

const cidrCache = new Map<string, Cidr>();
function cidr(text: string): Cidr {
  let c = cidrCache.get(text);
  if (!c) {
    c = parseCidrMasked(text);
    if (cidrCache.size > 10_000) cidrCache.clear();
    cidrCache.set(text, c);
  }
  return c;
}

function inIpBlock(peer: Extract<Peer, { kind: 'ipBlock' }>, address: string): boolean {
  const a = parseAddress(address);
  return cidrContains(cidr(peer.cidr), a) && !peer.except.some((e) => cidrContains(cidr(e), a));
}

export function peerMatches(s: Snapshot, peer: Peer, other: Host): boolean {
  if (peer.kind === 'ipBlock') return inIpBlock(peer, other.address);
  return other.kind === 'pod' && peerSelectsPod(s, peer, other.endpoint);
}

/** Whether one ports entry admits the flow; a name resolves on the destination pod. */
export function portMatches(pm: PortMatch, flow: Flow): boolean {
  if (flow.protocol === 'ICMP' || pm.protocol !== flow.protocol || flow.port === undefined) return false;
  if (pm.name !== undefined) {
    if (flow.dst.kind !== 'pod') return false;
    return flow.dst.endpoint.ports.some((p) => p.name === pm.name && p.protocol === pm.protocol && p.port === flow.port);
  }
  if (pm.port === undefined) return true;
  if (pm.endPort !== undefined) return flow.port >= pm.port && flow.port <= pm.endPort;
  return flow.port === pm.port;
}

function describePort(pm: PortMatch): string {
  if (pm.name !== undefined) return `${pm.name}/${pm.protocol}`;
  if (pm.port === undefined) return `all/${pm.protocol}`;
  return `${pm.port}${pm.endPort !== undefined ? `-${pm.endPort}` : ''}/${pm.protocol}`;
}

export function describeHost(h: Host): string {
  if (h.kind === 'pod') return endpointKey(h.endpoint);
  if (h.kind === 'node') return `node ${h.node.name}`;
  return h.address;
}

function describeFlowPort(f: Flow): string {
  return f.protocol === 'ICMP' ? 'ICMP' : `${f.port}/${f.protocol}`;
}

export function clusterPolicySelects(s: Snapshot, cp: ClusterPolicy, ep: Endpoint): boolean {
  return matches(cp.subject.namespaces, namespaceLabels(s, ep.namespace)) && matches(cp.subject.pods, ep.labels);
}

export function policySelects(p: Policy, ep: Endpoint): boolean {
  return p.namespace === ep.namespace && matches(p.podSelector, ep.labels);
}

/**
 * Which policies select a pod, per snapshot: a snapshot is never changed once built, and
 * `weft policy diff` asks the same question for millions of flows.
 */
interface Selection {
  cluster: ClusterPolicy[];
  ingress: Policy[];
  egress: Policy[];
  names: { ingress: string[]; egress: string[] };
}
const selecting = new WeakMap<Snapshot, WeakMap<Endpoint, Selection>>();

function selectionOf(s: Snapshot, ep: Endpoint): Selection {
  let bySnap = selecting.get(s);
  if (!bySnap) {
    bySnap = new WeakMap();
    selecting.set(s, bySnap);
  }
  // Keyed by the endpoint object (as immutable as the snapshot): callers may evaluate a pod not in s.
  let sel = bySnap.get(ep);
  if (!sel) {
    const ingress = s.policies.filter((p) => p.ingress !== undefined && policySelects(p, ep));
    const egress = s.policies.filter((p) => p.egress !== undefined && policySelects(p, ep));
    const names = (list: Policy[]): string[] => list.map((p) => `${p.namespace}/${p.name}`);
    sel = { cluster: orderedClusterPolicies(s.clusterPolicies).filter((cp) => clusterPolicySelects(s, cp, ep)), ingress, egress, names: { ingress: names(ingress), egress: names(egress) } };
    bySnap.set(ep, sel);
  }
  return sel;
}

/** WeftClusterPolicies selecting the pod, in evaluation order. */
export function selectingClusterPolicies(s: Snapshot, ep: Endpoint): ClusterPolicy[] {
  return selectionOf(s, ep).cluster;
}

function isolatingNames(s: Snapshot, ep: Endpoint, direction: 'ingress' | 'egress'): string[] {
  return selectionOf(s, ep).names[direction];
}

/** NetworkPolicies isolating the pod in a direction. */
export function isolatingPolicies(s: Snapshot, ep: Endpoint, direction: 'ingress' | 'egress'): Policy[] {
  return selectionOf(s, ep)[direction];
}

function evaluateDirection(s: Snapshot, direction: 'ingress' | 'egress', subject: Host, other: Host, flow: Flow, explain: boolean): DirectionVerdict {
  if (subject.kind !== 'pod') return { direction, allowed: true, decision: 'not-a-pod', isolatedBy: [], misses: [] };
  const ep = subject.endpoint;
  const base = { direction, subject: endpointKey(ep), isolatedBy: [] as string[], misses: [] as string[] };
  let passedBy: RuleRef | undefined;
  // 1. Cluster policies, by priority: the first matching rule decides; Pass hands over.
  tier: for (const cp of selectingClusterPolicies(s, ep)) {
    for (const r of cp[direction]) {
      if (!r.peers.some((p) => peerMatches(s, p, other))) continue;
      if (r.ports !== 'any' && !r.ports.some((pm) => portMatches(pm, flow))) continue;
      const ref: RuleRef = { kind: 'WeftClusterPolicy', name: cp.name, direction, rule: r.index, ...(r.name ? { ruleName: r.name } : {}), action: r.action };
      if (r.action === 'Pass') {
        passedBy = ref;
        break tier;
      }
      return { ...base, allowed: r.action === 'Allow', decision: 'cluster-policy', by: ref };
    }
  }
  const pass = passedBy ? { passedBy } : {};
  // 2. NetworkPolicies: isolated iff one selecting the pod covers this direction; then any rule allows.
  const isolating = isolatingPolicies(s, ep, direction);
  if (isolating.length === 0) return { ...base, ...pass, allowed: true, decision: 'not-isolated' };
  const isolatedBy = isolatingNames(s, ep, direction);
  const misses: string[] = [];
  for (const p of isolating) {
    const rules = p[direction] ?? [];
    if (explain && rules.length === 0) misses.push(`${p.namespace}/${p.name}: no ${direction} rules (denies all ${direction})`);
    for (const r of rules) {
      const portOk = r.ports === 'any' || r.ports.some((pm) => portMatches(pm, flow));
      if (!portOk && !explain) continue;
      const peerOk = r.peers === 'any' || r.peers.some((peer) => peerMatches(s, peer, other));
      if (peerOk && portOk) {
        return { ...base, ...pass, isolatedBy, allowed: true, decision: 'network-policy', by: { kind: 'NetworkPolicy', namespace: p.namespace, name: p.name, direction, rule: r.index } };
      }
      if (!explain) continue;
      const where = `${p.namespace}/${p.name} ${direction}[${r.index}]`;
      const why: string[] = [];
      if (!peerOk) why.push(`${direction === 'ingress' ? 'from' : 'to'} [${(r.peers as Peer[]).map(describePeer).join('; ')}] does not include ${describeHost(other)}`);
      if (!portOk) why.push(`ports [${(r.ports as PortMatch[]).map(describePort).join(', ')}] do not include ${describeFlowPort(flow)}${flow.dst.kind === 'pod' && (r.ports as PortMatch[]).some((pm) => pm.name) ? ` (named ports resolve on ${describeHost(flow.dst)})` : ''}`);
      misses.push(`${where}: ${why.join('; ')}`);
    }
  }
  return { ...base, ...pass, isolatedBy, misses, allowed: false, decision: 'no-rule' };
}

/** With `explain: false` the misses are left out (verdicts only, for bulk use). */
export function evaluate(s: Snapshot, flow: Flow, opts: { explain?: boolean } = {}): Verdict {
  const explain = opts.explain !== false;
  const { src, dst } = flow;
  if (src.kind === 'pod' && dst.kind === 'pod' && endpointKey(src.endpoint) === endpointKey(dst.endpoint)) {
    const v = (direction: 'ingress' | 'egress'): DirectionVerdict => ({ direction, subject: endpointKey(src.endpoint), allowed: true, decision: 'loopback', isolatedBy: [], misses: [] });
    return { allowed: true, egress: v('egress'), ingress: v('ingress') };
  }
  const egress = evaluateDirection(s, 'egress', src, dst, flow, explain);
  const ingress =
    src.kind === 'node' && dst.kind === 'pod' && dst.endpoint.node === src.node.name
      ? { direction: 'ingress' as const, subject: endpointKey(dst.endpoint), allowed: true, decision: 'own-node' as const, isolatedBy: [], misses: [] }
      : evaluateDirection(s, 'ingress', dst, src, flow, explain);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

/** What an address is in this snapshot: a pod's, a node's, or neither. */
const byAddress = new WeakMap<Snapshot, Map<string, Endpoint>>();

export function hostOf(s: Snapshot, address: string): Host {
  let index = byAddress.get(s);
  if (!index) {
    index = new Map();
    for (const e of s.endpoints) for (const a of e.addresses) if (!index.has(a)) index.set(a, e);
    byAddress.set(s, index);
  }
  const ep = index.get(address);
  if (ep) return { kind: 'pod', address, endpoint: ep };
  const node = s.nodes.find((n) => n.addresses.includes(address));
  if (node) return { kind: 'node', address, node };
  return { kind: 'address', address };
}
