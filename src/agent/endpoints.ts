import { createHash } from 'node:crypto';
import { addressOf } from '../cni/result.js';
import type { Store } from '../datastore/store.js';
import { isStoreError } from '../datastore/store.js';
import { SYSTEM_NAMESPACE, WEFT_API, type WeftEndpointObject } from '../model/objects.js';
import type { AttachmentRecord } from './attachment-store.js';

/**
 * Every pod attached on this node, recorded in the datastore as a WeftEndpoint (namespace,
 * name, labels, addresses, node) — what other nodes' controllers (policy, services, the lab)
 * read. Written by a level-triggered sync from the local records, so a datastore outage delays
 * the records but never an ADD.
 */
export function endpointName(rec: Pick<AttachmentRecord, 'containerId' | 'ifName' | 'pod'>): { name: string; namespace: string } {
  if (rec.pod?.namespace && rec.pod.name) {
    const name = rec.ifName === 'eth0' ? rec.pod.name : `${rec.pod.name}-${rec.ifName.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
    return { name, namespace: rec.pod.namespace };
  }
  const h = createHash('sha256').update(`${rec.containerId}\u0000${rec.ifName}`).digest('hex').slice(0, 16);
  return { name: `ep-${h}`, namespace: SYSTEM_NAMESPACE };
}

/** The endpoints this node should have (pure). */
export function desiredEndpoints(node: string, records: AttachmentRecord[]): WeftEndpointObject[] {
  return records
    .filter((r) => r.state === 'ready')
    .map((r) => {
      const { name, namespace } = endpointName(r);
      const spec: WeftEndpointObject['spec'] = {
        node,
        containerId: r.containerId,
        ifName: r.ifName,
        addresses: r.addresses.map(addressOf),
      };
      if (r.pod?.name) spec.podName = r.pod.name;
      if (r.pod?.labels && Object.keys(r.pod.labels).length) spec.labels = r.pod.labels;
      return { apiVersion: WEFT_API, kind: 'WeftEndpoint', metadata: { name, namespace }, spec };
    });
}

const same = (a: WeftEndpointObject, b: WeftEndpointObject): boolean => JSON.stringify(a.spec) === JSON.stringify(b.spec);

export async function syncEndpoints(store: Store, node: string, records: AttachmentRecord[]): Promise<number> {
  const want = new Map(desiredEndpoints(node, records).map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));
  const have = (await store.list<WeftEndpointObject>('WeftEndpoint')).items.filter((e) => e.spec.node === node);
  let changes = 0;
  for (const e of have) {
    const key = `${e.metadata.namespace}/${e.metadata.name}`;
    const w = want.get(key);
    if (!w) {
      await store.delete('WeftEndpoint', e.metadata.name, e.metadata.namespace, { resourceVersion: e.metadata.resourceVersion as string }).catch((err: unknown) => {
        if (!isStoreError(err, 'Conflict')) throw err;
      });
      changes++;
    } else if (!same(w, e)) {
      await store.update({ ...w, metadata: { ...w.metadata, resourceVersion: e.metadata.resourceVersion as string } });
      changes++;
    }
    want.delete(key);
  }
  for (const w of want.values()) {
    try {
      await store.create(w);
    } catch (err) {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
      // Held by another node's record (a pod moved): take it over.
      const cur = await store.get<WeftEndpointObject>('WeftEndpoint', w.metadata.name, w.metadata.namespace);
      if (cur) await store.update({ ...w, metadata: { ...w.metadata, resourceVersion: cur.metadata.resourceVersion as string } });
    }
    changes++;
  }
  return changes;
}
