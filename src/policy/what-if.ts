import type { KObject, NamespaceObject, NetworkPolicyObject, PodObject, WeftClusterPolicyObject } from '../model/objects.js';
import type { SnapshotInput } from './from-objects.js';

/**
 * The datastore's policy input as it would be after `weft apply` (or `weft delete`) of some
 * objects — pure, for `weft policy diff`. Objects of kinds policy does not read are returned
 * as `ignored`.
 */
export function withChanges(input: SnapshotInput, objs: KObject[], mode: 'apply' | 'delete'): { input: SnapshotInput; ignored: KObject[] } {
  const ignored: KObject[] = [];
  const same = (a: KObject, b: KObject): boolean => a.kind === b.kind && a.metadata.name === b.metadata.name && (a.metadata.namespace ?? 'default') === (b.metadata.namespace ?? 'default');
  const change = <T extends KObject>(list: T[], kind: string): T[] => {
    const mine = objs.filter((o) => o.kind === kind);
    const kept = list.filter((x) => !mine.some((o) => same(o, x)));
    return mode === 'apply' ? [...kept, ...(mine as T[])] : kept;
  };
  for (const o of objs) if (!['Namespace', 'Pod', 'NetworkPolicy', 'WeftClusterPolicy'].includes(o.kind)) ignored.push(o);
  return {
    input: {
      ...input,
      namespaces: change<NamespaceObject>(input.namespaces, 'Namespace'),
      pods: change<PodObject>(input.pods, 'Pod'),
      policies: change<NetworkPolicyObject>(input.policies, 'NetworkPolicy'),
      clusterPolicies: change<WeftClusterPolicyObject>(input.clusterPolicies, 'WeftClusterPolicy'),
    },
    ignored,
  };
}
