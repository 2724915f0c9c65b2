import type { Lease } from 'kubernetes-types/coordination/v1.js';
import type { Namespace, Node, Pod } from 'kubernetes-types/core/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';
import type { NetworkPolicy } from 'kubernetes-types/networking/v1.js';
import type { BackendSettings, EncryptionSettings } from '../datapath/backend-type.js';
import { isValidAddress } from '../ipam/cidr.js';

/**
 * Cluster objects. Kubernetes kinds keep their upstream shapes (kubernetes-types); Weft's own
 * kinds (apiVersion weft.io/v1) are Kubernetes-shaped too, so every datastore — file, etcd,
 * and later the Kubernetes API — holds the same things and every controller works on any.
 */
type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** kubernetes-types marks server-owned fields (resourceVersion…) readonly; the stores own them. */
export interface Meta extends Writable<ObjectMeta> {
  name: string;
}

/** What every stored object has. */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
}

export const WEFT_API = 'weft.io/v1';

/** The namespace Weft keeps its own namespaced objects in (node leases). */
export const SYSTEM_NAMESPACE = 'weft-system';

export type NodeObject = Node & KObject;
export type PodObject = Pod & KObject;
export type NamespaceObject = Namespace & KObject;
export type LeaseObject = Lease & KObject;
export type NetworkPolicyObject = NetworkPolicy & KObject;

export { BACKENDS, ENCRYPTIONS, type BackendType, type EncryptionSettings, type EncryptionType } from '../datapath/backend-type.js';

/** The cluster's pod network, one object named "default" (cluster-scoped). */
export interface ClusterNetworkObject extends KObject {
  kind: 'ClusterNetwork';
  spec: {
    /** At most one per family. */
    podCIDRs: string[];
    /** Prefix length of the block each node leases, per family. */
    blockSize: { ipv4: number; ipv6: number };
    backend: BackendSettings;
    /**
     * Encryption between nodes (absent: none): WireGuard then carries pod traffic between
     * nodes in place of the backend. Fixed when the cluster is created.
     */
    encryption?: EncryptionSettings;
    /** How long an agent counts as alive without renewing its lease (reported, not acted on). */
    leaseDurationSeconds: number;
    /** How long an agent may stay silent before its node counts as gone; absent: 24 h, 0: never. */
    nodeGraceSeconds?: number;
    /**
     * Where nodes' pod blocks come from: Weft leases them as IPBlock objects (cluster-pool, the
     * default), or Kubernetes allocates them in Node.spec.podCIDRs (kubernetes: the controller
     * manager's --allocate-node-cidrs).
     */
    ipam?: IpamMode;
  };
}

export type IpamMode = 'cluster-pool' | 'kubernetes';
export const IPAM_MODES: readonly IpamMode[] = ['cluster-pool', 'kubernetes'];

/** One node's block of the cluster range (cluster-scoped, named after the CIDR). */
export interface IPBlockObject extends KObject {
  kind: 'IPBlock';
  spec: { cidr: string; family: 4 | 6; node: string };
}

/** A pod attached on a node: who it is, where, with which addresses. */
export interface WeftEndpointObject extends KObject {
  kind: 'WeftEndpoint';
  spec: {
    node: string;
    containerId: string;
    ifName: string;
    addresses: string[];
    podName?: string;
    labels?: Record<string, string>;
  };
}

/** A label selector as written (metav1.LabelSelector). */
export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

export interface ClusterPolicyPeerSpec {
  /** Every pod of the namespaces this selects. */
  namespaces?: LabelSelectorSpec;
  /** Pods this selects, in the namespaces its namespaceSelector selects (absent: all). */
  pods?: { namespaceSelector?: LabelSelectorSpec; podSelector?: LabelSelectorSpec };
  /** Addresses, pod or not. */
  networks?: string[];
}

export interface ClusterPolicyPortSpec {
  portNumber?: { protocol: 'TCP' | 'UDP' | 'SCTP'; port: number };
  portRange?: { protocol: 'TCP' | 'UDP' | 'SCTP'; start: number; end: number };
  namedPort?: string;
}

export interface ClusterPolicyRuleSpec {
  name?: string;
  action: 'Allow' | 'Deny' | 'Pass';
  from?: ClusterPolicyPeerSpec[];
  to?: ClusterPolicyPeerSpec[];
  ports?: ClusterPolicyPortSpec[];
}

/**
 * Cluster-wide policy evaluated before namespaces' NetworkPolicies, in the shape of the
 * upstream AdminNetworkPolicy: lower priority first; the first rule that matches decides —
 * Allow and Deny finally, Pass hands the decision to the NetworkPolicies.
 */
export interface WeftClusterPolicyObject extends KObject {
  kind: 'WeftClusterPolicy';
  spec: {
    priority: number;
    subject: { namespaces?: LabelSelectorSpec; pods?: { namespaceSelector?: LabelSelectorSpec; podSelector?: LabelSelectorSpec } };
    ingress?: ClusterPolicyRuleSpec[];
    egress?: ClusterPolicyRuleSpec[];
  };
}

/** Annotations a node publishes for its peers' backends. */
export const NODE_ANNOTATIONS = {
  backend: 'weft.io/backend',
  vxlanMac: 'weft.io/vxlan-mac',
  /** Comma-separated underlay addresses (one per family) peers send to. */
  nodeIPs: 'weft.io/node-ips',
  /**
   * Comma-separated pod blocks (one per family) the node holds, where Weft does not own the
   * Node's spec: on Kubernetes, spec.podCIDRs is the controller manager's (and immutable).
   */
  podCIDRs: 'weft.io/pod-cidrs',
  /** Where the cluster encrypts: the node's WireGuard public key (never its private key). */
  wireguardPublicKey: 'weft.io/wireguard-public-key',
  /** …and where peers send to: address:port of its WireGuard device. */
  wireguardEndpoint: 'weft.io/wireguard-endpoint',
} as const;

/** An endpoint `192.0.2.1:51820` or `[2001:db8::1]:51820` as address and port (pure); undefined when it is not one. */
export function parseEndpoint(text: string): { address: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const address = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (!isValidAddress(address) || port < 1 || port > 65535 || (m[1] !== undefined) !== address.includes(':')) return undefined;
  return { address, port };
}

/** Annotations the node agent writes on the Pods it attaches. */
export const POD_ANNOTATIONS = {
  /**
   * The pod's addresses (one per family, comma-separated), written at ADD as Calico's
   * cni.projectcalico.org/podIPs is: peers know them before the kubelet reports status.podIPs.
   */
  podIPs: 'weft.io/pod-ips',
} as const;

/** A Pod's addresses as the kubelet reports them (status.podIPs, else status.podIP). */
export function podStatusIPs(p: PodObject): string[] {
  return (p.status?.podIPs?.map((x) => x.ip) ?? [p.status?.podIP]).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
}

/**
 * A Pod's addresses as its node's agent annotated them (weft.io/pod-ips). Anyone who may edit
 * the Pod may edit this too: a reader trusts it only below status and inside the pod's node's
 * blocks (policy/from-objects.ts), and a value that is not a list of addresses is no claim.
 */
export function podAnnotatedIPs(p: PodObject): string[] {
  const ann = p.metadata.annotations?.[POD_ANNOTATIONS.podIPs];
  return ann ? ann.split(',') : [];
}

/**
 * The pod blocks a Node publishes: Weft's annotation where present; else, on a node an agent
 * registered (it carries Weft's backend annotation), spec.podCIDRs. A Node no Weft agent has
 * joined publishes none — on Kubernetes its spec.podCIDRs are the controller manager's, not Weft's.
 */
export function nodePodCidrs(n: NodeObject): string[] {
  const ann = n.metadata.annotations ?? {};
  const listed = ann[NODE_ANNOTATIONS.podCIDRs];
  if (listed !== undefined) return listed.split(',').filter((c) => c !== '');
  return ann[NODE_ANNOTATIONS.backend] !== undefined ? [...(n.spec?.podCIDRs ?? [])] : [];
}

/** A stable, valid object name for a CIDR (10.244.1.0/24 -> 10-244-1-0-24). */
export function blockName(cidr: string): string {
  return cidr.replace(/[.:/]/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '').toLowerCase();
}
