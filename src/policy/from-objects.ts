import { createHash } from 'node:crypto';
import { canonicalAddress, cidrContains, parseAddress, parseCidrMasked } from '../ipam/cidr.js';
import { admitClusterPolicy } from '../model/cluster-policy.js';
import { admitNetworkPolicy } from '../model/network-policy.js';
import {
  NODE_ANNOTATIONS,
  nodePodCidrs,
  podAnnotatedIPs,
  podStatusIPs,
  SYSTEM_NAMESPACE,
  type ClusterPolicyPeerSpec,
  type ClusterPolicyPortSpec,
  type LabelSelectorSpec,
  type NamespaceObject,
  type NetworkPolicyObject,
  type NodeObject,
  type PodObject,
  type WeftClusterPolicyObject,
  type WeftEndpointObject,
} from '../model/objects.js';
import type { ClusterPolicy, ClusterRule, Endpoint, NamedPort, NodeInfo, Operator, Peer, Policy, PortMatch, Protocol, Rule, Selector, Snapshot } from './ir.js';
import { METADATA_NAME_LABEL, PROTOCOLS } from './ir.js';

/**
 * Datastore objects → the policy IR (pure). Objects are admitted again on the way in — the
 * datastore may hold what `weft apply` did not check (written straight to etcd); those are
 * reported as problems and left out, never half-applied.
 */
export function toSelector(s: LabelSelectorSpec | null | undefined): Selector {
  return {
    matchLabels: { ...(s?.matchLabels ?? {}) },
    matchExpressions: (s?.matchExpressions ?? []).map((r) => ({ key: r.key, operator: r.operator as Operator, values: [...(r.values ?? [])] })),
  };
}

const cidrText = (c: string): string => parseCidrMasked(c).text;

function npPeer(p: NonNullable<NonNullable<NonNullable<NetworkPolicyObject['spec']>['ingress']>[number]['from']>[number], ns: string): Peer {
  if (p.ipBlock) return { kind: 'ipBlock', cidr: cidrText(p.ipBlock.cidr), except: (p.ipBlock.except ?? []).map(cidrText) };
  return {
    kind: 'pods',
    namespaces: p.namespaceSelector ? { selector: toSelector(p.namespaceSelector) } : { own: ns },
    pods: toSelector(p.podSelector),
  };
}

type NpPort = NonNullable<NonNullable<NonNullable<NetworkPolicyObject['spec']>['ingress']>[number]['ports']>[number];

function npPort(p: NpPort): PortMatch {
  const protocol = (p.protocol ?? 'TCP') as Protocol;
  if (typeof p.port === 'string') return { protocol, name: p.port };
  if (typeof p.port === 'number') return p.endPort != null ? { protocol, port: p.port, endPort: p.endPort } : { protocol, port: p.port };
  return { protocol };
}

function npRules(list: Array<{ from?: unknown; to?: unknown; ports?: NpPort[] }> | undefined, peersOf: 'from' | 'to', ns: string): Rule[] {
  return (list ?? []).map((r, index) => {
    const peers = r[peersOf] as Parameters<typeof npPeer>[0][] | undefined;
    return {
      index,
      peers: peers && peers.length > 0 ? peers.map((p) => npPeer(p, ns)) : 'any',
      ports: r.ports && r.ports.length > 0 ? r.ports.map(npPort) : 'any',
    };
  });
}

/** Admits (validates, defaults) and converts; throws a UserError when invalid. */
export function toPolicy(obj: NetworkPolicyObject): Policy {
  const spec = admitNetworkPolicy(obj).spec as NonNullable<NetworkPolicyObject['spec']>;
  const ns = obj.metadata.namespace ?? 'default';
  const types = spec.policyTypes ?? [];
  const out: Policy = { namespace: ns, name: obj.metadata.name, podSelector: toSelector(spec.podSelector) };
  if (types.includes('Ingress')) out.ingress = npRules(spec.ingress, 'from', ns);
  if (types.includes('Egress')) out.egress = npRules(spec.egress, 'to', ns);
  return out;
}

function clusterPeers(list: ClusterPolicyPeerSpec[] | undefined): Peer[] {
  return (list ?? []).flatMap((p): Peer[] => {
    if (p.networks) return p.networks.map((c) => ({ kind: 'ipBlock', cidr: cidrText(c), except: [] }));
    if (p.namespaces) return [{ kind: 'pods', namespaces: { selector: toSelector(p.namespaces) }, pods: toSelector(undefined) }];
    return [{ kind: 'pods', namespaces: { selector: toSelector(p.pods?.namespaceSelector) }, pods: toSelector(p.pods?.podSelector) }];
  });
}

function clusterPorts(list: ClusterPolicyPortSpec[] | undefined): PortMatch[] | 'any' {
  if (!list || list.length === 0) return 'any';
  return list.flatMap((p): PortMatch[] => {
    if (p.portNumber) return [{ protocol: p.portNumber.protocol ?? 'TCP', port: p.portNumber.port }];
    if (p.portRange) return [{ protocol: p.portRange.protocol ?? 'TCP', port: p.portRange.start, endPort: p.portRange.end }];
    // A named port without a protocol: the name, whatever protocol the pod declares it with.
    return PROTOCOLS.map((protocol) => ({ protocol, name: p.namedPort as string }));
  });
}

export function toClusterPolicy(obj: WeftClusterPolicyObject): ClusterPolicy {
  const spec = admitClusterPolicy(obj).spec;
  const rules = (dir: 'ingress' | 'egress'): ClusterRule[] =>
    (spec[dir] ?? []).map((r, index) => ({
      index,
      ...(r.name ? { name: r.name } : {}),
      action: r.action,
      peers: clusterPeers(dir === 'ingress' ? r.from : r.to),
      ports: clusterPorts(r.ports),
    }));
  const subject = spec.subject.namespaces
    ? { namespaces: toSelector(spec.subject.namespaces), pods: toSelector(undefined) }
    : { namespaces: toSelector(spec.subject.pods?.namespaceSelector), pods: toSelector(spec.subject.pods?.podSelector) };
  return { name: obj.metadata.name, priority: spec.priority, subject, ingress: rules('ingress'), egress: rules('egress') };
}

// --- endpoints ---

function podPorts(pod: PodObject): NamedPort[] {
  const out: NamedPort[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name) out.push({ name: p.name, protocol: (p.protocol ?? 'TCP') as Protocol, port: p.containerPort });
    }
  }
  return out;
}

function canonical(addresses: string[]): string[] {
  return addresses.flatMap((ip) => {
    try {
      return [canonicalAddress(ip)];
    } catch {
      return [];
    }
  });
}

/** A pod attached on this node, as the agent's own records know it (before the datastore does). */
export interface LocalEndpoint {
  namespace?: string;
  name?: string;
  labels?: Record<string, string>;
  addresses: string[];
}

export interface SnapshotInput {
  namespaces: NamespaceObject[];
  pods: PodObject[];
  weftEndpoints: WeftEndpointObject[];
  policies: NetworkPolicyObject[];
  clusterPolicies: WeftClusterPolicyObject[];
  nodes: NodeObject[];
  /** This node's attachments, newer than anything in the datastore. */
  local?: { node: string; endpoints: LocalEndpoint[] };
}

/**
 * The pods policy sees: a Pod object gives labels and container ports, a WeftEndpoint the
 * addresses its node attached, the local records the newest word on this node's pods. Host
 * network pods, finished pods and attachments without a pod identity are not selectable.
 * Where two claim one address, the fresher source keeps it (local, then WeftEndpoint, then
 * Pod status, then the agent's weft.io/pod-ips annotation of a Pod without status addresses) —
 * a reused address must never carry its previous pod's identity; two claims from sources of one
 * kind leave it to neither. The annotation is editable by anyone who may edit the Pod, so it
 * counts least, and only for addresses inside the blocks of the node the Pod is bound to.
 */
function buildEndpoints(input: SnapshotInput): Endpoint[] {
  // Plain objects built field by field: object spread and rest made this most of a sync at 5000 pods.
  const byKey = new Map<string, { ep: Endpoint; rank: number }>();
  const pods = new Map(input.pods.map((p) => [`${p.metadata.namespace ?? 'default'}/${p.metadata.name}`, p]));
  const selectable = (p: PodObject | undefined): boolean => !p || (!p.spec?.hostNetwork && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  const endpoint = (namespace: string, name: string, labels: Record<string, string> | undefined, addresses: string[], ports: NamedPort[], node: string | undefined): Endpoint => {
    const ep: Endpoint = { namespace, name, labels: { ...labels }, addresses, ports };
    if (node) ep.node = node;
    return ep;
  };
  const blocksOf = new Map(input.nodes.map((n) => [n.metadata.name, nodePodCidrs(n).flatMap((c) => {
    try {
      return [parseCidrMasked(c)];
    } catch {
      return [];
    }
  })]));
  const inNodeBlocks = (node: string | null | undefined, a: string): boolean => {
    const blocks = node ? blocksOf.get(node) : undefined;
    return blocks !== undefined && blocks.some((b) => cidrContains(b, parseAddress(a)));
  };
  for (const [key, p] of pods) {
    if (!selectable(p)) continue;
    let addresses = canonical(podStatusIPs(p));
    let rank = 1;
    if (addresses.length === 0) {
      addresses = canonical(podAnnotatedIPs(p)).filter((a) => inNodeBlocks(p.spec?.nodeName, a));
      rank = 0.5;
    }
    if (addresses.length === 0) continue;
    byKey.set(key, { ep: endpoint(p.metadata.namespace ?? 'default', p.metadata.name, p.metadata.labels, addresses, podPorts(p), p.spec?.nodeName), rank });
  }
  const merge = (ns: string, name: string, addresses: string[], labels: Record<string, string> | undefined, node: string, rank: number): void => {
    const key = `${ns}/${name}`;
    const pod = pods.get(key);
    if (!selectable(pod)) return;
    // Admitted objects hold valid addresses; should one not, it is dropped, never fatal to the sync.
    const valid = addresses.flatMap((a) => {
      try {
        return [canonicalAddress(a)];
      } catch {
        return [];
      }
    });
    byKey.set(key, { ep: endpoint(ns, name, pod?.metadata.labels ?? labels, valid, pod ? podPorts(pod) : [], node), rank });
  };
  for (const e of input.weftEndpoints) {
    if (e.metadata.namespace === SYSTEM_NAMESPACE && !e.spec.podName) continue;
    if (input.local && e.spec.node === input.local.node) continue; // the records are newer
    merge(e.metadata.namespace ?? 'default', e.spec.podName ?? e.metadata.name, e.spec.addresses, e.spec.labels, e.spec.node, 2);
  }
  for (const l of input.local?.endpoints ?? []) {
    if (l.namespace && l.name) merge(l.namespace, l.name, l.addresses, l.labels, input.local?.node as string, 3);
  }
  // Two claims of one rank (two Pods' status, say) cannot be told apart: the address is
  // nobody's, whatever order the objects were read in — every agent and CLI agrees.
  const owner = new Map<string, { e: { ep: Endpoint; rank: number } | undefined; rank: number }>();
  for (const e of byKey.values()) {
    for (const a of e.ep.addresses) {
      const cur = owner.get(a);
      if (!cur || e.rank > cur.rank) owner.set(a, { e, rank: e.rank });
      else if (e.rank === cur.rank && cur.e !== e) cur.e = undefined;
    }
  }
  // Sorted by "ns/name", the keys of byKey (made once, not twice per comparison).
  const out: Endpoint[] = [];
  for (const [, e] of [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const mine = e.ep.addresses.filter((a) => owner.get(a)?.e === e);
    if (mine.length === 0) continue;
    if (mine.length !== e.ep.addresses.length) e.ep.addresses = mine;
    out.push(e.ep);
  }
  return out;
}

function nodeInfo(n: NodeObject): NodeInfo {
  const ann = n.metadata.annotations?.[NODE_ANNOTATIONS.nodeIPs];
  const list = ann ? ann.split(',') : (n.status?.addresses ?? []).map((a) => a.address);
  return { name: n.metadata.name, addresses: list.map((a) => a.trim()).filter((a) => a !== '') };
}

/**
 * Policies converted, by the object read from the datastore: objects are never changed once read
 * (an update is a new object), and every sync and `weft policy diff` rebuilds a snapshot from
 * mostly the same objects — admitting 1000 policies again is most of a sync's CPU.
 */
const converted = new WeakMap<object, Policy | ClusterPolicy | Error>();
function once<O extends object, T extends Policy | ClusterPolicy>(obj: O, convert: (o: O) => T): T {
  let r = converted.get(obj);
  if (r === undefined) {
    try {
      r = convert(obj);
    } catch (err) {
      r = err as Error;
    }
    converted.set(obj, r);
  }
  if (r instanceof Error) throw r;
  return r as T;
}

export function buildSnapshot(input: SnapshotInput): { snapshot: Snapshot; problems: string[] } {
  const problems: string[] = [];
  const policies: Policy[] = [];
  for (const p of input.policies) {
    try {
      policies.push(once(p, toPolicy));
    } catch (err) {
      problems.push(`networkpolicy ${p.metadata.namespace ?? 'default'}/${p.metadata.name} is ignored: ${(err as Error).message}`);
    }
  }
  const clusterPolicies: ClusterPolicy[] = [];
  for (const c of input.clusterPolicies) {
    try {
      clusterPolicies.push(once(c, toClusterPolicy));
    } catch (err) {
      problems.push(`weftclusterpolicy ${c.metadata.name} is ignored: ${(err as Error).message}`);
    }
  }
  const namespaces = new Map(input.namespaces.map((n) => [n.metadata.name, { ...(n.metadata.labels ?? {}), [METADATA_NAME_LABEL]: n.metadata.name }]));
  const byName = (a: { namespace?: string; name: string }, b: { namespace?: string; name: string }): number => (`${a.namespace ?? ''}/${a.name}` < `${b.namespace ?? ''}/${b.name}` ? -1 : 1);
  return {
    snapshot: {
      namespaces,
      endpoints: buildEndpoints(input),
      policies: policies.sort(byName),
      clusterPolicies: clusterPolicies.sort(byName),
      nodes: input.nodes.map(nodeInfo).sort(byName),
    },
    problems,
  };
}

/**
 * A digest of everything the ruleset depends on, independent of which node computes it:
 * every agent reports the one it has applied, so "converged" is a comparison, not a sleep.
 */
export function snapshotFingerprint(s: Snapshot): string {
  const canon = {
    namespaces: [...s.namespaces.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, l]) => [n, sortKeys(l)]),
    endpoints: s.endpoints.map((e) => ({ ...e, labels: sortKeys(e.labels), addresses: [...e.addresses].sort() })),
    policies: s.policies,
    clusterPolicies: s.clusterPolicies,
  };
  return createHash('sha256').update(JSON.stringify(canon)).digest('hex').slice(0, 16);
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}
