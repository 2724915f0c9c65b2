import type { Store } from '../datastore/store.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject, WeftEndpointObject } from '../model/objects.js';
import { buildSnapshot, type SnapshotInput } from './from-objects.js';
import type { Snapshot } from './ir.js';

/** The objects policy reads, straight from a datastore (the CLI and the lab; agents use informers). */
export async function readPolicyInput(store: Store): Promise<SnapshotInput> {
  const [namespaces, pods, weftEndpoints, policies, clusterPolicies, nodes] = await Promise.all([
    store.list<NamespaceObject>('Namespace'),
    store.list<PodObject>('Pod'),
    store.list<WeftEndpointObject>('WeftEndpoint'),
    store.list<NetworkPolicyObject>('NetworkPolicy'),
    store.list<WeftClusterPolicyObject>('WeftClusterPolicy'),
    store.list<NodeObject>('Node'),
  ]);
  return { namespaces: namespaces.items, pods: pods.items, weftEndpoints: weftEndpoints.items, policies: policies.items, clusterPolicies: clusterPolicies.items, nodes: nodes.items };
}

export async function readSnapshot(store: Store): Promise<{ snapshot: Snapshot; problems: string[] }> {
  return buildSnapshot(await readPolicyInput(store));
}
