/**
 * The policy engine's internal model: what the datastore's NetworkPolicies and
 * WeftClusterPolicies mean once validated and defaulted, and the endpoints they select. Both
 * back ends read only this — the evaluator (`weft policy trace`) and the nftables compiler —
 * which is what lets a property test hold them equal.
 */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

/** A label selector, normalized: no labels and no expressions selects everything. */
export interface Selector {
  matchLabels: Record<string, string>;
  matchExpressions: Requirement[];
}

/** Which namespaces a pod peer looks in: the policy's own, or those a selector matches. */
export type NamespaceScope = { own: string } | { selector: Selector };

export type Peer =
  | { kind: 'pods'; namespaces: NamespaceScope; pods: Selector }
  /** `cidr` minus `except`, by address — pod addresses included (Weft's documented choice). */
  | { kind: 'ipBlock'; cidr: string; except: string[] };

/**
 * One `ports` entry. No `port`: every port of the protocol. A `name` resolves on the
 * destination pod from its container ports of the same protocol.
 */
export interface PortMatch {
  protocol: Protocol;
  port?: number;
  endPort?: number;
  name?: string;
}

/** A rule allows what matches any peer AND any port; "any" is an absent or empty list. */
export interface Rule {
  index: number;
  peers: Peer[] | 'any';
  ports: PortMatch[] | 'any';
}

export interface Policy {
  namespace: string;
  name: string;
  podSelector: Selector;
  /** Absent: the policy does not isolate that direction. Present and empty: it denies all. */
  ingress?: Rule[];
  egress?: Rule[];
}

export type Action = 'Allow' | 'Deny' | 'Pass';
export const ACTIONS: readonly Action[] = ['Allow', 'Deny', 'Pass'];

export interface ClusterRule {
  index: number;
  name?: string;
  action: Action;
  peers: Peer[];
  ports: PortMatch[] | 'any';
}

/** A WeftClusterPolicy: evaluated by priority (lower first, then name) before NetworkPolicies. */
export interface ClusterPolicy {
  name: string;
  priority: number;
  subject: { namespaces: Selector; pods: Selector };
  ingress: ClusterRule[];
  egress: ClusterRule[];
}

export interface NamedPort {
  name: string;
  protocol: Protocol;
  port: number;
}

/** A pod as policy sees it. */
export interface Endpoint {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  addresses: string[];
  ports: NamedPort[];
  node?: string;
}

export interface NodeInfo {
  name: string;
  addresses: string[];
}

/** Everything a verdict or a ruleset depends on. */
export interface Snapshot {
  namespaces: Map<string, Record<string, string>>;
  endpoints: Endpoint[];
  policies: Policy[];
  clusterPolicies: ClusterPolicy[];
  nodes: NodeInfo[];
}

export const METADATA_NAME_LABEL = 'kubernetes.io/metadata.name';

/** A namespace's labels; one without an object still has its name label (the API server's). */
export function namespaceLabels(s: Pick<Snapshot, 'namespaces'>, ns: string): Record<string, string> {
  return s.namespaces.get(ns) ?? { [METADATA_NAME_LABEL]: ns };
}

export function endpointKey(e: Pick<Endpoint, 'namespace' | 'name'>): string {
  return `${e.namespace}/${e.name}`;
}

/** Cluster policies in evaluation order. */
export function orderedClusterPolicies(list: ClusterPolicy[]): ClusterPolicy[] {
  return [...list].sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
