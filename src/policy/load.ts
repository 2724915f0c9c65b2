import { describeRejected, type Store } from '../datastore/store.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject, WeftEndpointObject } from '../model/objects.js';
import { buildSnapshot, type SnapshotInput } from './from-objects.js';
import type { Snapshot } from './ir.js';

/**
 * The objects policy reads, straight from a datastore (the CLI and the lab; agents use
 * informers), and the ones left out because they are not usable.
 */
export async function readPolicyInput(store: Store): Promise<SnapshotInput & { rejected: string[] }> {
  const [namespaces, pods, weftEndpoints, policies, clusterPolicies, nodes] = await Promise.all([
    store.list<NamespaceObject>('Namespace'),
    store.list<PodObject>('Pod'),
    store.list<WeftEndpointObject>('WeftEndpoint'),
    store.list<NetworkPolicyObject>('NetworkPolicy'),
    store.list<WeftClusterPolicyObject>('WeftClusterPolicy'),
    store.list<NodeObject>('Node'),
  ]);
  const rejected = [namespaces, pods, weftEndpoints, policies, clusterPolicies, nodes].flatMap((l) => l.rejected.map((r) => `${describeRejected(r)} (left out)`));
  return { namespaces: namespaces.items, pods: pods.items, weftEndpoints: weftEndpoints.items, policies: policies.items, clusterPolicies: clusterPolicies.items, nodes: nodes.items, rejected };
}

export async function readSnapshot(store: Store): Promise<{ snapshot: Snapshot; problems: string[] }> {
  const input = await readPolicyInput(store);
  const built = buildSnapshot(input);
  return { snapshot: built.snapshot, problems: [...input.rejected, ...built.problems] };
}
