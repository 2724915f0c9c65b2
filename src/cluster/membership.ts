import { cidrContains, parseCidr, type Family } from '../ipam/cidr.js';
import {
  blockName,
  NODE_ANNOTATIONS,
  SYSTEM_NAMESPACE,
  WEFT_API,
  type BackendType,
  type ClusterNetworkObject,
  type EncryptionSettings,
  type EncryptionType,
  type IpamMode,
  type IPBlockObject,
  type LeaseObject,
  type NodeObject,
  type WeftEndpointObject,
} from '../model/objects.js';
import { isStoreError, StoreError, type Store } from '../datastore/store.js';
import { candidateBlocks } from './blocks.js';
import { leaseExpiresAt } from './liveness.js';

/**
 * A node joining the cluster: the cluster's network config, its Node object, its lease, and one
 * block per family of the cluster range. Every write is create-if-absent or compare-and-swap, so
 * nodes racing for the same block can never both win it.
 */
export const CLUSTER_NETWORK_NAME = 'default';

export interface ClusterDefaults {
  podCIDRs: string[];
  /** Absent: cluster-pool. */
  ipam?: IpamMode;
  blockSize: { ipv4: number; ipv6: number };
  backend: { type: BackendType; vni?: number; port?: number };
  /** Absent: none. */
  encryption?: EncryptionSettings;
  leaseDurationSeconds: number;
  /** How long an agent may be silent before its node counts as gone (liveness.ts); 0 = never. */
  nodeGraceSeconds?: number;
}

/**
 * Where this agent's settings (flags, or the ConfigMap through them) differ from the cluster's,
 * one line each (pure). The cluster's stand: they are fixed when the first agent writes them.
 */
export function settingsDiffer(mine: ClusterDefaults, cluster: ClusterNetworkObject['spec']): string[] {
  const out: string[] = [];
  // Field by field: an API server returns a custom resource's keys in its own order.
  const note = (what: string, a: string | number | undefined, b: string | number | undefined): void => {
    if (a !== b) out.push(`${what}: ${a ?? 'unset'} here, ${b ?? 'unset'} in the cluster`);
  };
  note('cluster CIDRs', [...mine.podCIDRs].sort().join(','), [...cluster.podCIDRs].sort().join(','));
  note('ipam', mine.ipam ?? 'cluster-pool', cluster.ipam ?? 'cluster-pool');
  note('backend', mine.backend.type, cluster.backend.type);
  note('VXLAN VNI', mine.backend.vni, cluster.backend.vni);
  note('VXLAN port', mine.backend.port, cluster.backend.port);
  note('encryption', mine.encryption?.type ?? 'none', cluster.encryption?.type ?? 'none');
  note('WireGuard port', mine.encryption?.port, cluster.encryption?.port);
  note('IPv4 block size', mine.blockSize.ipv4, cluster.blockSize.ipv4);
  note('IPv6 block size', mine.blockSize.ipv6, cluster.blockSize.ipv6);
  return out;
}

/**
 * Refuses an agent whose encryption setting is not the cluster's (pure; `mine` undefined: the
 * agent was given none). Encryption is fixed when the cluster is created: a node that encrypts
 * in a cluster that does not (or the reverse) would reach none of its peers' pods, and a node
 * that was asked to encrypt must never carry pod traffic in clear.
 */
export function encryptionMismatch(mine: EncryptionType | undefined, cluster: ClusterNetworkObject['spec']): string | undefined {
  const theirs = cluster.encryption?.type ?? 'none';
  if (mine === undefined || mine === theirs) return undefined;
  return (
    `--encryption ${mine}, but the cluster was created with encryption ${theirs}: encryption is fixed when the first agent creates the cluster, ` +
    `and is not turned ${mine === 'none' ? 'off' : 'on'} on a running cluster (nodes would stop reaching each other's pods until all had switched). ` +
    `Start this agent with --encryption ${theirs}, or without --encryption; to change it, recreate the cluster network (docs/encryption.md)`
  );
}

/** Reads the cluster network, creating it from `defaults` if this is the first node. */
export async function ensureClusterNetwork(store: Store, defaults: ClusterDefaults | undefined): Promise<ClusterNetworkObject> {
  const existing = await store.get<ClusterNetworkObject>('ClusterNetwork', CLUSTER_NETWORK_NAME).catch((err: unknown) => {
    if (!isStoreError(err, 'Invalid')) throw err;
    // No node can join a cluster whose network it cannot read: say so, and what fixes it.
    throw new StoreError('Invalid', `the cluster's network settings cannot be used: ${err.message} (correct the ClusterNetwork "default" in the datastore, or delete it and start the first agent with --cluster-cidr)`);
  });
  if (existing) return existing;
  if (!defaults) {
    throw new StoreError('NotFound', 'the datastore has no ClusterNetwork "default" yet: give the first agent --cluster-cidr (and --backend)');
  }
  const obj: ClusterNetworkObject = { apiVersion: WEFT_API, kind: 'ClusterNetwork', metadata: { name: CLUSTER_NETWORK_NAME }, spec: defaults };
  try {
    return await store.create(obj);
  } catch (err) {
    if (isStoreError(err, 'AlreadyExists')) return (await store.get<ClusterNetworkObject>('ClusterNetwork', CLUSTER_NETWORK_NAME)) as ClusterNetworkObject;
    throw err;
  }
}

/**
 * Read-modify-write with retries on Conflict. This node's own object holding something unusable
 * (written past admission) is replaced whole: the node is the one that knows what it must say.
 */
async function upsert<T extends NodeObject | LeaseObject>(store: Store, kind: string, name: string, namespace: string | undefined, make: (current: T | undefined) => T): Promise<T> {
  for (let attempt = 0; attempt < 10; attempt++) {
    let unusable = false;
    const current = await store.get<T>(kind, name, namespace).catch((err: unknown) => {
      if (!isStoreError(err, 'Invalid')) throw err;
      unusable = true;
      return undefined;
    });
    const next = make(current);
    try {
      if (unusable) return await store.update(next);
      return current ? await store.update(next) : await store.create(next);
    } catch (err) {
      if (!isStoreError(err, 'Conflict') && !isStoreError(err, 'AlreadyExists')) throw err;
    }
  }
  throw new StoreError('Conflict', `${kind} ${name}: too many concurrent writers`);
}

export interface NodeInfo {
  name: string;
  /** Underlay addresses peers reach this node at, one per family. */
  ips: string[];
  backend: BackendType;
  vxlanMac?: string;
  /** Where the cluster encrypts: its WireGuard public key and endpoint. */
  wireguard?: { publicKey: string; endpoint: string };
}

/**
 * Who owns the Node objects. On the file and etcd datastores Weft does: an agent creates its
 * node's object and removes it when the node leaves or is gone. On Kubernetes the kubelet
 * registers nodes and the cluster removes them: an agent only annotates its own Node — never
 * creates, rewrites (spec, status) or deletes one.
 */
export function weftOwnsNodes(store: Store): boolean {
  return store.backend !== 'kubernetes';
}

const WEFT_NODE_ANNOTATIONS: readonly string[] = Object.values(NODE_ANNOTATIONS);

function withWeftAnnotations(current: Record<string, string> | undefined, info: NodeInfo, podCIDRs: string[] | undefined, blocksInAnnotation: boolean): Record<string, string> {
  const annotations: Record<string, string> = { ...(current ?? {}), [NODE_ANNOTATIONS.backend]: info.backend, [NODE_ANNOTATIONS.nodeIPs]: info.ips.join(',') };
  if (info.vxlanMac) annotations[NODE_ANNOTATIONS.vxlanMac] = info.vxlanMac;
  else delete annotations[NODE_ANNOTATIONS.vxlanMac];
  if (info.wireguard) {
    annotations[NODE_ANNOTATIONS.wireguardPublicKey] = info.wireguard.publicKey;
    annotations[NODE_ANNOTATIONS.wireguardEndpoint] = info.wireguard.endpoint;
  } else {
    delete annotations[NODE_ANNOTATIONS.wireguardPublicKey];
    delete annotations[NODE_ANNOTATIONS.wireguardEndpoint];
  }
  // Empty until the node holds blocks: never absent, or peers would take spec.podCIDRs for them.
  if (blocksInAnnotation) annotations[NODE_ANNOTATIONS.podCIDRs] = podCIDRs?.join(',') ?? current?.[NODE_ANNOTATIONS.podCIDRs] ?? '';
  return annotations;
}

/**
 * Whether a Node lacks (or has other) Weft annotations than this node's. `blocksInAnnotation`:
 * the blocks are listed in an annotation (a Node Weft does not own), not in its spec.
 */
export function nodeNeedsAnnotations(node: NodeObject, info: NodeInfo, podCIDRs: string[], blocksInAnnotation = true): boolean {
  const have = node.metadata.annotations ?? {};
  const want = withWeftAnnotations(have, info, podCIDRs, blocksInAnnotation);
  return WEFT_NODE_ANNOTATIONS.some((k) => have[k] !== want[k]);
}

export async function registerNode(store: Store, info: NodeInfo, podCIDRs?: string[]): Promise<NodeObject> {
  if (!weftOwnsNodes(store)) return annotateNode(store, info.name, (a) => withWeftAnnotations(a, info, podCIDRs, true));
  return upsert<NodeObject>(store, 'Node', info.name, undefined, (current) => {
    const annotations = withWeftAnnotations(current?.metadata.annotations, info, podCIDRs, false);
    const cidrs = podCIDRs ?? current?.spec?.podCIDRs ?? [];
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        ...(current?.metadata ?? {}),
        name: info.name,
        labels: { ...(current?.metadata.labels ?? {}), 'kubernetes.io/hostname': info.name },
        annotations,
      },
      spec: { ...(current?.spec ?? {}), podCIDRs: cidrs, ...(cidrs[0] ? { podCIDR: cidrs[0] } : {}) },
      status: { ...(current?.status ?? {}), addresses: info.ips.map((address) => ({ type: 'InternalIP', address })) },
    };
  });
}

/**
 * Changes only the annotations of a Node someone else owns (a merge patch on Kubernetes): its
 * spec and status stay the kubelet's and the controller manager's.
 */
async function annotateNode(store: Store, name: string, annotate: (current: Record<string, string> | undefined) => Record<string, string>): Promise<NodeObject> {
  const missing = (): StoreError =>
    new StoreError('NotFound', `there is no Node ${name}: on Kubernetes the kubelet registers nodes, and the agent only annotates its own — give --node-name the Node's name (in a pod, from the downward API's spec.nodeName)`);
  const current = await store.get<NodeObject>('Node', name);
  if (!current) throw missing();
  const have = current.metadata.annotations ?? {};
  const want = annotate(current.metadata.annotations);
  const changes = Object.fromEntries([...new Set([...Object.keys(have), ...Object.keys(want)])].filter((k) => have[k] !== want[k]).map((k) => [k, want[k] ?? null]));
  if (Object.keys(changes).length === 0) return current;
  return store.annotate<NodeObject>('Node', name, undefined, changes).catch((err: unknown) => {
    throw isStoreError(err, 'NotFound') ? missing() : err;
  });
}

export async function renewLease(store: Store, node: string, durationSeconds: number, now = Date.now()): Promise<LeaseObject> {
  const stamp = new Date(now).toISOString();
  return lease(store, node, durationSeconds, stamp).catch((err: unknown) => {
    // Kubernetes refuses objects in a namespace that does not exist (the other stores do not care).
    if (isStoreError(err, 'NotFound')) throw new StoreError('NotFound', `the lease of node ${node} cannot be written: namespace ${SYSTEM_NAMESPACE} does not exist (create it: kubectl create namespace ${SYSTEM_NAMESPACE}): ${err.message}`);
    throw err;
  });
}

function lease(store: Store, node: string, durationSeconds: number, stamp: string): Promise<LeaseObject> {
  return upsert<LeaseObject>(store, 'Lease', node, SYSTEM_NAMESPACE, (current) => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { ...(current?.metadata ?? {}), name: node, namespace: SYSTEM_NAMESPACE },
    spec: {
      holderIdentity: node,
      leaseDurationSeconds: durationSeconds,
      acquireTime: current?.spec?.acquireTime ?? stamp,
      renewTime: stamp,
    },
  }));
}

/**
 * One block per family of the cluster range for `node`: the one it already holds, else the first
 * block nobody holds. Only when none is left, a block whose node is gone — no Node object, and no
 * lease renewed within its duration — is taken over: pods on that node may still use its
 * addresses, so the takeover is never silent (`reclaimed` says so, and the IPBlock keeps
 * weft.io/reclaimed-from). A node whose agent merely crashed keeps its Node object and its blocks.
 */
export interface ClaimedBlocks {
  blocks: string[];
  /** Blocks taken over from nodes that are gone, with whom from. */
  reclaimed: Array<{ cidr: string; from: string }>;
}

export const RECLAIMED_FROM = 'weft.io/reclaimed-from';

/**
 * With `ipam: kubernetes`, a node's pod blocks are its Node's spec.podCIDRs, as the controller
 * manager allocates them (--allocate-node-cidrs): one per family of the cluster, each inside
 * the cluster's range and of its block size — anything else is an error saying which flag
 * fixes it. Waits (calling `waiting` every `pollMs`) while the Node has none yet.
 */
export async function allocatedBlocks(store: Store, node: string, network: ClusterNetworkObject, opts: { waiting: (message: string) => void; pollMs?: number; signal?: AbortSignal }): Promise<string[]> {
  const ranges = network.spec.podCIDRs.map(parseCidr);
  for (let waited = 0; ; waited++) {
    const n = await store.get<NodeObject>('Node', node);
    if (!n) throw new StoreError('NotFound', `there is no Node ${node}: on Kubernetes the kubelet registers nodes — give --node-name the Node's name`);
    const listed = n.spec?.podCIDRs ?? [];
    if (listed.length > 0) {
      const blocks: string[] = [];
      for (const r of ranges) {
        const size = r.family === 4 ? network.spec.blockSize.ipv4 : network.spec.blockSize.ipv6;
        const mine = listed.map(parseCidr).find((c) => c.family === r.family);
        if (!mine) throw new StoreError('Invalid', `Node ${node}'s spec.podCIDRs (${listed.join(', ')}) have no IPv${r.family} block, and the cluster's pod ranges include ${r.text}: give --cluster-cidr only the families the controller manager allocates`);
        if (!cidrContains(r, { family: r.family, value: mine.network }) || mine.prefix < r.prefix) throw new StoreError('Invalid', `Node ${node}'s pod block ${mine.text} lies outside the cluster's pod range ${r.text}: give --cluster-cidr the range the controller manager allocates from (its --cluster-cidr)`);
        if (mine.prefix !== size) throw new StoreError('Invalid', `Node ${node}'s pod block ${mine.text} is a /${mine.prefix}, the cluster's blocks are /${size}: give --block-size-v${r.family} ${mine.prefix} (the controller manager's --node-cidr-mask-size)`);
        blocks.push(mine.text);
      }
      return blocks;
    }
    if (waited % 20 === 0) opts.waiting(`waiting for Node ${node}'s spec.podCIDRs: with --ipam kubernetes the controller manager allocates them (kube-controller-manager --allocate-node-cidrs --cluster-cidr ...)`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    if (opts.signal?.aborted) throw new StoreError('Unavailable', `stopped while waiting for Node ${node}'s spec.podCIDRs`);
  }
}

export async function claimBlocks(store: Store, node: string, network: ClusterNetworkObject, now = Date.now()): Promise<string[]> {
  return (await claimBlocksReporting(store, node, network, now)).blocks;
}

export async function claimBlocksReporting(store: Store, node: string, network: ClusterNetworkObject, now = Date.now()): Promise<ClaimedBlocks> {
  const out: ClaimedBlocks = { blocks: [], reclaimed: [] };
  for (const text of network.spec.podCIDRs) {
    const cluster = parseCidr(text);
    const prefix = cluster.family === 4 ? network.spec.blockSize.ipv4 : network.spec.blockSize.ipv6;
    const got = await claimOne(store, node, cluster.family, text, prefix, now);
    out.blocks.push(got.cidr);
    if (got.from) out.reclaimed.push({ cidr: got.cidr, from: got.from });
  }
  return out;
}

async function claimOne(store: Store, node: string, family: Family, clusterText: string, prefix: number, now: number): Promise<{ cidr: string; from?: string }> {
  const cluster = parseCidr(clusterText);
  const blocks = new Map((await store.list<IPBlockObject>('IPBlock')).items.map((b) => [b.spec.cidr, b]));
  const mine = [...blocks.values()].find(
    (b) => b.spec.node === node && b.spec.family === family && cidrContains(cluster, { family, value: parseCidr(b.spec.cidr).network }),
  );
  if (mine) return { cidr: mine.spec.cidr };
  const leases = new Map((await store.list<LeaseObject>('Lease', SYSTEM_NAMESPACE)).items.map((l) => [l.metadata.name, l]));
  const nodes = new Set((await store.list<NodeObject>('Node')).items.map((n) => n.metadata.name));
  const gone = (b: IPBlockObject): boolean => {
    if (nodes.has(b.spec.node)) return false;
    const exp = leaseExpiresAt(leases.get(b.spec.node));
    return exp === undefined || exp <= now;
  };
  const want = (c: { text: string }): IPBlockObject => ({ apiVersion: WEFT_API, kind: 'IPBlock', metadata: { name: blockName(c.text) }, spec: { cidr: c.text, family, node } });
  const raced = (err: unknown): void => {
    // Another node won this block a moment ago (or its name holds something unusable): the next one.
    if (!isStoreError(err, 'AlreadyExists') && !isStoreError(err, 'Conflict')) throw err;
  };
  for (const c of candidateBlocks(cluster, prefix)) {
    if (blocks.has(c.text)) continue;
    try {
      await store.create(want(c));
      return { cidr: c.text };
    } catch (err) {
      raced(err);
    }
  }
  for (const c of candidateBlocks(cluster, prefix)) {
    const existing = blocks.get(c.text);
    if (!existing || !gone(existing)) continue;
    const w = want(c);
    try {
      await store.update({ ...w, metadata: { ...existing.metadata, annotations: { ...(existing.metadata.annotations ?? {}), [RECLAIMED_FROM]: `${existing.spec.node} at ${new Date(now).toISOString()}` } } });
      return { cidr: c.text, from: existing.spec.node };
    } catch (err) {
      raced(err);
    }
  }
  throw new StoreError('Conflict', `no free /${prefix} block left in the cluster range ${clusterText} for node ${node} (every block belongs to a node that exists or whose agent renewed its lease)`);
}

/**
 * A node counted as gone (its agent silent for longer than the cluster's grace): its Lease, its
 * Node and its endpoints are deleted — the Lease first and only if it is still the version
 * judged (an agent that came back has renewed it: nothing happens), then the Node only if it is
 * still the version judged. An agent that comes back later re-registers its Node (keepAlive).
 * Its blocks stay named after it until another node needs them (claimOne).
 */
export async function removeGoneNode(store: Store, node: NodeObject, lease: LeaseObject | undefined): Promise<boolean> {
  // On Kubernetes a node is gone when the cluster deletes its Node; a silent agent is only reported.
  if (!weftOwnsNodes(store)) return false;
  try {
    if (lease && !(await store.delete('Lease', lease.metadata.name, SYSTEM_NAMESPACE, { resourceVersion: lease.metadata.resourceVersion as string }))) return false;
    const removed = await store.delete('Node', node.metadata.name, undefined, { resourceVersion: node.metadata.resourceVersion as string });
    if (removed) await forgetEndpoints(store, node.metadata.name);
    return removed;
  } catch (err) {
    if (isStoreError(err, 'Conflict')) return false;
    throw err;
  }
}

/**
 * A node leaving on purpose: its blocks, its Node, its lease and the endpoints of its pods go
 * at once — the endpoints too, or policy would keep taking their addresses for those pods. A
 * Node Weft does not own stays, without Weft's annotations: peers then route to it no more.
 */
export async function leaveCluster(store: Store, node: string): Promise<void> {
  // Unannotated first where the Node stays: peers stop routing to it before its blocks go.
  if (!weftOwnsNodes(store)) {
    await annotateNode(store, node, (a) => Object.fromEntries(Object.entries(a ?? {}).filter(([k]) => !WEFT_NODE_ANNOTATIONS.includes(k)))).catch((err: unknown) => {
      if (!isStoreError(err, 'NotFound')) throw err;
    });
  }
  for (const b of (await store.list<IPBlockObject>('IPBlock')).items) {
    if (b.spec.node === node) await store.delete('IPBlock', b.metadata.name, undefined, { resourceVersion: b.metadata.resourceVersion as string }).catch(() => false);
  }
  await forgetEndpoints(store, node);
  if (weftOwnsNodes(store)) await store.delete('Node', node);
  await store.delete('Lease', node, SYSTEM_NAMESPACE);
}

/** The WeftEndpoints a node recorded: its pods, which are gone with it. */
async function forgetEndpoints(store: Store, node: string): Promise<void> {
  for (const e of (await store.list<WeftEndpointObject>('WeftEndpoint')).items) {
    if (e.spec.node === node) await store.delete('WeftEndpoint', e.metadata.name, e.metadata.namespace, { resourceVersion: e.metadata.resourceVersion as string }).catch(() => false);
  }
}
