import { cidrContains, parseCidr, type Family } from '../ipam/cidr.js';
import {
  blockName,
  NODE_ANNOTATIONS,
  SYSTEM_NAMESPACE,
  WEFT_API,
  type BackendType,
  type ClusterNetworkObject,
  type IPBlockObject,
  type LeaseObject,
  type NodeObject,
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
  blockSize: { ipv4: number; ipv6: number };
  backend: { type: BackendType; vni?: number; port?: number };
  leaseDurationSeconds: number;
}

/** Reads the cluster network, creating it from `defaults` if this is the first node. */
export async function ensureClusterNetwork(store: Store, defaults: ClusterDefaults | undefined): Promise<ClusterNetworkObject> {
  const existing = await store.get<ClusterNetworkObject>('ClusterNetwork', CLUSTER_NETWORK_NAME);
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

/** Read-modify-write with retries on Conflict. */
async function upsert<T extends NodeObject | LeaseObject>(store: Store, kind: string, name: string, namespace: string | undefined, make: (current: T | undefined) => T): Promise<T> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await store.get<T>(kind, name, namespace);
    const next = make(current);
    try {
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
}

export async function registerNode(store: Store, info: NodeInfo, podCIDRs?: string[]): Promise<NodeObject> {
  return upsert<NodeObject>(store, 'Node', info.name, undefined, (current) => {
    const annotations: Record<string, string> = {
      ...(current?.metadata.annotations ?? {}),
      [NODE_ANNOTATIONS.backend]: info.backend,
      [NODE_ANNOTATIONS.nodeIPs]: info.ips.join(','),
    };
    if (info.vxlanMac) annotations[NODE_ANNOTATIONS.vxlanMac] = info.vxlanMac;
    else delete annotations[NODE_ANNOTATIONS.vxlanMac];
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

export async function renewLease(store: Store, node: string, durationSeconds: number, now = Date.now()): Promise<LeaseObject> {
  const stamp = new Date(now).toISOString();
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
 * free one, else one whose holder's lease expired (taken over by compare-and-swap).
 */
export async function claimBlocks(store: Store, node: string, network: ClusterNetworkObject, now = Date.now()): Promise<string[]> {
  const out: string[] = [];
  for (const text of network.spec.podCIDRs) {
    const cluster = parseCidr(text);
    const prefix = cluster.family === 4 ? network.spec.blockSize.ipv4 : network.spec.blockSize.ipv6;
    out.push(await claimOne(store, node, cluster.family, text, prefix, now));
  }
  return out;
}

async function claimOne(store: Store, node: string, family: Family, clusterText: string, prefix: number, now: number): Promise<string> {
  const cluster = parseCidr(clusterText);
  const blocks = new Map((await store.list<IPBlockObject>('IPBlock')).items.map((b) => [b.spec.cidr, b]));
  const mine = [...blocks.values()].find(
    (b) => b.spec.node === node && b.spec.family === family && cidrContains(cluster, { family, value: parseCidr(b.spec.cidr).network }),
  );
  if (mine) return mine.spec.cidr;
  const leases = new Map((await store.list<LeaseObject>('Lease', SYSTEM_NAMESPACE)).items.map((l) => [l.metadata.name, l]));
  const expired = (b: IPBlockObject): boolean => {
    const exp = leaseExpiresAt(leases.get(b.spec.node));
    return exp === undefined || exp <= now;
  };
  for (const c of candidateBlocks(cluster, prefix)) {
    const existing = blocks.get(c.text);
    const want: IPBlockObject = { apiVersion: WEFT_API, kind: 'IPBlock', metadata: { name: blockName(c.text) }, spec: { cidr: c.text, family, node } };
    try {
      if (!existing) {
        await store.create(want);
        return c.text;
      }
      if (existing.spec.node === node) return c.text;
      if (expired(existing)) {
        await store.update({ ...want, metadata: { ...existing.metadata } });
        return c.text;
      }
    } catch (err) {
      if (!isStoreError(err, 'AlreadyExists') && !isStoreError(err, 'Conflict')) throw err;
      // Another node won this block a moment ago: the next one.
    }
  }
  throw new StoreError('Conflict', `no free /${prefix} block left in the cluster range ${clusterText} for node ${node}`);
}

/** A node leaving on purpose: its blocks, its Node and its lease go at once (no TTL wait). */
export async function leaveCluster(store: Store, node: string): Promise<void> {
  for (const b of (await store.list<IPBlockObject>('IPBlock')).items) {
    if (b.spec.node === node) await store.delete('IPBlock', b.metadata.name, undefined, { resourceVersion: b.metadata.resourceVersion as string }).catch(() => false);
  }
  await store.delete('Node', node);
  await store.delete('Lease', node, SYSTEM_NAMESPACE);
}
