import { createHash } from 'node:crypto';
import { addressOf } from '../cni/result.js';
import type { Store } from '../datastore/store.js';
import { isStoreError } from '../datastore/store.js';
import { POD_ANNOTATIONS, SYSTEM_NAMESPACE, WEFT_API, type PodObject, type WeftEndpointObject } from '../model/objects.js';
import { isDnsSubdomain } from '../util/dns-names.js';
import type { Logger } from '../util/log.js';
import type { AttachmentRecord } from './attachment-store.js';

/**
 * Every pod attached on this node, recorded in the datastore as a WeftEndpoint (namespace,
 * name, labels, addresses, node) — what other nodes' controllers (policy, services, the lab)
 * read. Written by a level-triggered sync from the local records, so a datastore outage delays
 * the records but never an ADD.
 */
export function endpointName(rec: Pick<AttachmentRecord, 'containerId' | 'ifName' | 'pod'>): { name: string; namespace: string } {
  if (rec.pod?.namespace && rec.pod.name) {
    if (rec.ifName === 'eth0') return { name: rec.pod.name, namespace: rec.pod.namespace };
    // "pod-ifname", with the interface name made a valid name part: lower case, a-z0-9 and "-",
    // no leading or trailing "-" ("net-" → "net", "Eth_1" → "eth-1"); a hash keeps it unique.
    const part = rec.ifName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
    const tail = `${part ? `${part}-` : ''}${createHash('sha256').update(rec.ifName).digest('hex').slice(0, 6)}`;
    const head = rec.pod.name.slice(0, 252 - tail.length).replace(/[-.]+$/, '');
    const name = `${head}-${tail}`;
    if (isDnsSubdomain(name)) return { name, namespace: rec.pod.namespace };
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

/**
 * Converges this node's WeftEndpoints in the datastore with its records, from `current` (the
 * agent's informer: no list per run). One object failing (refused, a conflict) is logged and
 * retried on the next run; the others carry on.
 */
export async function syncEndpoints(store: Store, node: string, records: AttachmentRecord[], current: WeftEndpointObject[], log?: Logger): Promise<number> {
  const want = new Map(desiredEndpoints(node, records).map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));
  const have = current.filter((e) => e.spec.node === node);
  let changes = 0;
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
      changes++;
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
    }
  };
  for (const e of have) {
    const key = `${e.metadata.namespace}/${e.metadata.name}`;
    const w = want.get(key);
    want.delete(key);
    // `current` may lag the datastore (an informer): on a Conflict, the object is read again.
    const fresh = (): Promise<WeftEndpointObject | undefined> => store.get<WeftEndpointObject>('WeftEndpoint', e.metadata.name, e.metadata.namespace);
    if (!w) {
      await attempt(`delete ${key}`, async () => {
        try {
          await store.delete('WeftEndpoint', e.metadata.name, e.metadata.namespace, { resourceVersion: e.metadata.resourceVersion as string });
        } catch (err) {
          if (!isStoreError(err, 'Conflict')) throw err;
          const cur = await fresh();
          // Taken over by another node (a pod moved): its record now, not to delete.
          if (cur && cur.spec.node === node) await store.delete('WeftEndpoint', e.metadata.name, e.metadata.namespace, { resourceVersion: cur.metadata.resourceVersion as string });
        }
      });
    } else if (!same(w, e)) {
      await attempt(`update ${key}`, async () => {
        try {
          await store.update({ ...w, metadata: { ...w.metadata, resourceVersion: e.metadata.resourceVersion as string } });
        } catch (err) {
          if (!isStoreError(err, 'Conflict')) throw err;
          const cur = await fresh();
          if (!cur) await store.create(w);
          else if (!same(w, cur)) await store.update({ ...w, metadata: { ...w.metadata, resourceVersion: cur.metadata.resourceVersion as string } });
        }
      });
    }
  }
  for (const [key, w] of want) {
    await attempt(`create ${key}`, async () => {
      try {
        await store.create(w);
      } catch (err) {
        if (!isStoreError(err, 'AlreadyExists')) throw err;
        // Held by another node's record (a pod moved), or something unusable: take it over.
        const cur = await store.get<WeftEndpointObject>('WeftEndpoint', w.metadata.name, w.metadata.namespace).catch((e: unknown) => {
          if (isStoreError(e, 'Invalid')) return undefined;
          throw e;
        });
        // Already as wanted: written by an earlier run the informer had not shown yet.
        if (cur && same(w, cur)) return;
        await store.update(cur ? { ...w, metadata: { ...w.metadata, resourceVersion: cur.metadata.resourceVersion as string } } : w);
      }
    });
  }
  if (failures.length > 0) {
    log?.warn('some endpoints could not be recorded; the others were', { failures });
    throw new Error(`${failures.length} endpoint change(s) failed: ${failures[0]}`);
  }
  return changes;
}

/** What one local Pod should carry: its addresses, and its uid where the runtime named it. */
export interface PodIPs {
  value: string;
  uid?: string;
}

/** The weft.io/pod-ips annotation each local pod should carry, by "namespace/name" (pure). */
export function desiredPodIPs(records: AttachmentRecord[]): Map<string, PodIPs> {
  const out = new Map<string, PodIPs>();
  for (const r of records) {
    // The pod's primary interface: what the kubelet reports as status.podIPs.
    if (r.state !== 'ready' || r.ifName !== 'eth0' || !r.pod?.namespace || !r.pod.name || r.addresses.length === 0) continue;
    out.set(`${r.pod.namespace}/${r.pod.name}`, { value: r.addresses.map(addressOf).join(','), ...(r.pod.uid ? { uid: r.pod.uid } : {}) });
  }
  return out;
}

/**
 * Converges the weft.io/pod-ips annotations of this node's Pods (Kubernetes only: elsewhere
 * there are no Pods but Weft's records). Each write names the Pod's uid where known, so a Pod of
 * the same name made anew (on another node, say) is never touched. `written` is what this agent
 * set, kept between runs so a steady state costs no request. A Pod that is gone, or is another
 * by now, needs nothing: the annotation went with the one that had it.
 */
export async function syncPodIPs(store: Store, records: AttachmentRecord[], written: Map<string, PodIPs>): Promise<number> {
  const want = desiredPodIPs(records);
  let changes = 0;
  const failures: string[] = [];
  const set = async (key: string, to: PodIPs | undefined, uid: string | undefined): Promise<void> => {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      await store.annotate<PodObject>('Pod', name, namespace, { [POD_ANNOTATIONS.podIPs]: to?.value ?? null }, uid ? { uid } : {});
      changes++;
    } catch (err) {
      if (!isStoreError(err, 'NotFound') && !isStoreError(err, 'Conflict')) {
        failures.push(`${key}: ${(err as Error).message}`);
        return;
      }
    }
    if (to) written.set(key, to);
    else written.delete(key);
  };
  for (const [key, to] of want) {
    const had = written.get(key);
    if (had?.value !== to.value || had.uid !== to.uid) await set(key, to, to.uid);
  }
  for (const [key, had] of [...written]) if (!want.has(key)) await set(key, undefined, had.uid);
  if (failures.length > 0) throw new Error(`${failures.length} pod address annotation(s) failed: ${failures[0]}`);
  return changes;
}
