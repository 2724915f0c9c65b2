/**
 * The datastore on the Kubernetes API. Kubernetes kinds are the cluster's own resources (Node,
 * Pod, Namespace, NetworkPolicy, Lease); Weft's kinds are its custom resources (weft.io/v1,
 * deploy/crds.yaml). Revisions are the API's resourceVersions, which a real API server takes
 * from etcd's revision: one counter over all kinds, as the Store contract has it — Kubernetes
 * calls them opaque, so this is the one place that reads them as numbers. Watches resume from
 * the last revision seen (an event or a bookmark) when the server ends a stream or a
 * connection breaks; only an expired revision (410) makes the caller list again.
 */
import type { KObject } from '../model/objects.js';
import { KubeClient, KubeStatusError, KubeUnreachableError, statusOf, type KubeResponse } from './kube-client.js';
import type { KubeConnection } from './kube-connection.js';
import { identityProblem, StoreError, validateObject, type AnnotateOptions, type AnnotationChanges, type ListResult, type RejectedObject, type Store, type WatchEvent } from './store.js';

export interface KubeResource {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  /** Writes to .status go through the status subresource (the main resource ignores them). */
  status: boolean;
  /**
   * Annotations are patched through the status subresource, which for Nodes and Pods keeps a
   * request's metadata but never its spec (the API server's node and pod status strategies):
   * the agent needs `nodes/status` and `pods/status` patch, not patch on the objects — as
   * Flannel annotates Nodes and Calico's CNI plugin annotates Pods.
   */
  annotateViaStatus?: boolean;
}

export const KUBE_RESOURCES: Readonly<Record<string, KubeResource>> = {
  Namespace: { group: '', version: 'v1', plural: 'namespaces', namespaced: false, status: true },
  Node: { group: '', version: 'v1', plural: 'nodes', namespaced: false, status: true, annotateViaStatus: true },
  Pod: { group: '', version: 'v1', plural: 'pods', namespaced: true, status: true, annotateViaStatus: true },
  Lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true, status: false },
  NetworkPolicy: { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', namespaced: true, status: false },
  ClusterNetwork: { group: 'weft.io', version: 'v1', plural: 'clusternetworks', namespaced: false, status: false },
  IPBlock: { group: 'weft.io', version: 'v1', plural: 'ipblocks', namespaced: false, status: false },
  WeftEndpoint: { group: 'weft.io', version: 'v1', plural: 'weftendpoints', namespaced: true, status: false },
  WeftClusterPolicy: { group: 'weft.io', version: 'v1', plural: 'weftclusterpolicies', namespaced: false, status: false },
};

/**
 * The server ends each watch after about this long (plus jitter), and the client gives up on
 * one that outlives it by WATCH_MARGIN_S: a connection that died without a word (a dropped
 * NAT entry, a vanished server) is noticed within that bound, and the watch resumes.
 */
const WATCH_TIMEOUT_S = 60;
const WATCH_JITTER_S = 30;
const WATCH_MARGIN_S = 15;
/** A stream that lived this long, or brought anything, was a success: failures count anew. */
const HEALTHY_STREAM_MS = 5000;
const RESUME_FIRST_MS = 200;
const RESUME_MAX_MS = 5000;
/**
 * Failed attempts in a row (0.2 + 0.4 + ... + 3.2 s of backoff) before a watch gives up with
 * Unavailable: the informer then reports the datastore gone, waits, and lists again. Longer
 * would hide an outage from the controllers that must not judge peers on a stale cache. A
 * failed attempt: refused, broken off or ended by the server before it lived HEALTHY_STREAM_MS
 * or brought an event or a bookmark.
 */
const RESUME_TRIES = 6;

function resourceOf(kind: string): KubeResource {
  const r = KUBE_RESOURCES[kind];
  if (!r) throw new StoreError('Invalid', `kind ${kind} is not kept in the Kubernetes datastore (it keeps ${Object.keys(KUBE_RESOURCES).join(', ')})`);
  return r;
}

const apiVersionOf = (r: KubeResource): string => (r.group === '' ? r.version : `${r.group}/${r.version}`);

/** The collection path (all namespaces when a namespaced kind is listed without one). */
export function collectionPath(kind: string, namespace?: string): string {
  const r = resourceOf(kind);
  const root = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${root}${ns}/${r.plural}`;
}

export function objectPath(kind: string, name: string, namespace?: string): string {
  const r = resourceOf(kind);
  if (r.namespaced && namespace === undefined) throw new StoreError('Invalid', `${kind} ${name}: a namespace is required`);
  return `${collectionPath(kind, r.namespaced ? namespace : undefined)}/${encodeURIComponent(name)}`;
}

function revisionOf(rv: unknown, what: string): number {
  const n = typeof rv === 'string' ? Number(rv) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new StoreError('Unavailable', `${what}: the API's resourceVersion ${JSON.stringify(rv)} is not a revision number (is this a Kubernetes API server backed by etcd?)`);
  return n;
}

/** The API's failure as a StoreError: what callers of every Store understand. */
function storeError(res: KubeResponse, what: string): StoreError {
  const s = statusOf(res.status, res.body);
  const message = `${what}: ${s.message}`;
  if (res.status === 409) return new StoreError(s.reason === 'AlreadyExists' ? 'AlreadyExists' : 'Conflict', message);
  if (res.status === 404) return new StoreError('NotFound', message);
  if (res.status === 410) return new StoreError('Gone', message);
  if (res.status === 400 || res.status === 422) return new StoreError('Invalid', message);
  if (res.status === 401 || res.status === 403) return new StoreError('Unavailable', `${message} (the API refused this identity: check the token and what its RBAC roles allow)`);
  return new StoreError('Unavailable', `${message} (HTTP ${res.status})`);
}

/** A collection the API does not know: Weft's CRDs are not installed (or an old cluster). */
function notServed(kind: string, what: string): StoreError {
  const r = resourceOf(kind);
  const hint = r.group === 'weft.io' ? `install Weft's custom resources: kubectl apply -f deploy/crds.yaml` : `this API server does not serve ${apiVersionOf(r)}`;
  return new StoreError('Unavailable', `${what}: the API has no ${r.plural}.${r.group || 'core'} resource (${hint})`);
}

export class KubernetesStore implements Store {
  readonly backend = 'kubernetes' as const;
  private readonly client: KubeClient;

  constructor(conn: KubeConnection, userAgent = 'weft') {
    this.client = new KubeClient(conn, userAgent);
  }

  private async call(method: string, path: string, what: string, opts: { body?: unknown; query?: Record<string, string>; contentType?: string } = {}): Promise<KubeResponse> {
    try {
      return await this.client.request(method, path, opts);
    } catch (err) {
      if (err instanceof KubeUnreachableError) throw new StoreError('Unavailable', `${what}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** The object as Weft's stores hold it: kind and apiVersion present (list items lack them). */
  private decode<T extends KObject>(kind: string, raw: unknown): { ok: T } | { rejected: RejectedObject } {
    const r = resourceOf(kind);
    const o = (typeof raw === 'object' && raw !== null ? { apiVersion: apiVersionOf(r), kind, ...(raw as object) } : raw) as { metadata?: { name?: unknown; namespace?: unknown; managedFields?: unknown } };
    // Server-side apply's bookkeeping: often the larger part of an object, and nothing Weft reads.
    if (o?.metadata && 'managedFields' in o.metadata) {
      o.metadata = { ...o.metadata };
      delete o.metadata.managedFields;
    }
    const name = typeof o?.metadata?.name === 'string' ? o.metadata.name : '?';
    const namespace = typeof o?.metadata?.namespace === 'string' ? o.metadata.namespace : undefined;
    const why = identityProblem(o, kind, name, r.namespaced ? namespace : undefined);
    if (why) return { rejected: { kind, name, ...(namespace ? { namespace } : {}), reason: why } };
    return { ok: o as unknown as T };
  }

  async get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    const what = `get ${kind} ${namespace ? `${namespace}/` : ''}${name}`;
    const res = await this.call('GET', objectPath(kind, name, namespace), what);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw storeError(res, what);
    const d = this.decode<T>(kind, res.body);
    if ('rejected' in d) throw new StoreError('Invalid', `${what}: ${d.rejected.reason}`);
    return d.ok;
  }

  async list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    const what = `list ${kind}`;
    const res = await this.call('GET', collectionPath(kind, namespace), what);
    if (res.status === 404) throw notServed(kind, what);
    if (res.status !== 200) throw storeError(res, what);
    const body = res.body as { metadata?: { resourceVersion?: unknown }; items?: unknown };
    const items: T[] = [];
    const rejected: RejectedObject[] = [];
    for (const raw of Array.isArray(body.items) ? (body.items as unknown[]) : []) {
      const d = this.decode<T>(kind, raw);
      if ('ok' in d) items.push(d.ok);
      else rejected.push(d.rejected);
    }
    return { items, revision: revisionOf(body.metadata?.resourceVersion, what), rejected };
  }

  /** Writes .status through the subresource, where the kind has one and the object carries a status. */
  private async writeStatus<T extends KObject>(kind: string, written: T, wanted: T, what: string): Promise<T> {
    const status = (wanted as { status?: unknown }).status;
    if (!resourceOf(kind).status || status === undefined) return written;
    const body = { ...written, status };
    const res = await this.call('PUT', `${objectPath(kind, written.metadata.name, written.metadata.namespace)}/status`, `${what} (status)`, { body });
    if (res.status !== 200) throw storeError(res, `${what} (status)`);
    const d = this.decode<T>(kind, res.body);
    if ('rejected' in d) throw new StoreError('Unavailable', `${what}: the API answered with ${d.rejected.reason}`);
    return d.ok;
  }

  async create<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    const what = `create ${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
    const body = structuredClone(obj) as T;
    delete body.metadata.resourceVersion;
    body.apiVersion = apiVersionOf(resourceOf(obj.kind));
    const res = await this.call('POST', collectionPath(obj.kind, obj.metadata.namespace), what, { body });
    if (res.status !== 201 && res.status !== 200) throw storeError(res, what);
    const d = this.decode<T>(obj.kind, res.body);
    if ('rejected' in d) throw new StoreError('Unavailable', `${what}: the API answered with ${d.rejected.reason}`);
    return this.writeStatus(obj.kind, d.ok, obj, what);
  }

  async update<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    const what = `update ${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
    const body = structuredClone(obj) as T;
    body.apiVersion = apiVersionOf(resourceOf(obj.kind));
    const res = await this.call('PUT', objectPath(obj.kind, obj.metadata.name, obj.metadata.namespace), what, { body });
    if (res.status !== 200 && res.status !== 201) throw storeError(res, what);
    const d = this.decode<T>(obj.kind, res.body);
    if ('rejected' in d) throw new StoreError('Unavailable', `${what}: the API answered with ${d.rejected.reason}`);
    return this.writeStatus(obj.kind, d.ok, obj, what);
  }

  async annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
    const what = `annotate ${kind} ${namespace ? `${namespace}/` : ''}${name}`;
    const path = `${objectPath(kind, name, namespace)}${resourceOf(kind).annotateViaStatus ? '/status' : ''}`;
    // A merge patch: only these keys change (null removes one). The API server takes no uid
    // precondition on a patch (a uid in one is an immutable field changed): with `uid`, the
    // object is read, its uid checked, and the patch made conditional on its resourceVersion.
    for (let attempt = 0; attempt < 5; attempt++) {
      // A read the caller made (and checked the uid on) spares the first one here.
      let resourceVersion = attempt === 0 && opts?.uid !== undefined ? opts.readAt : undefined;
      if (opts?.uid !== undefined && resourceVersion === undefined) {
        const cur = await this.get<T>(kind, name, namespace);
        if (!cur) throw new StoreError('NotFound', `${what}: it does not exist`);
        if (cur.metadata.uid !== opts.uid) throw new StoreError('Conflict', `${what}: it is another object by now (uid ${cur.metadata.uid ?? 'none'}, not ${opts.uid})`);
        resourceVersion = cur.metadata.resourceVersion;
      }
      const body = { metadata: { annotations: changes, ...(resourceVersion !== undefined ? { resourceVersion } : {}) } };
      const res = await this.call('PATCH', path, what, { body, contentType: 'application/merge-patch+json' });
      if (res.status === 404) throw new StoreError('NotFound', `${what}: it does not exist`);
      // Written by someone else since the read (the kubelet's status): read again.
      if (res.status === 409 && resourceVersion !== undefined) continue;
      if (res.status !== 200) throw storeError(res, what);
      const d = this.decode<T>(kind, res.body);
      if ('rejected' in d) throw new StoreError('Unavailable', `${what}: the API answered with ${d.rejected.reason}`);
      return d.ok;
    }
    throw new StoreError('Conflict', `${what}: too many concurrent writers`);
  }

  async delete(kind: string, name: string, namespace?: string, opts?: { resourceVersion?: string }): Promise<boolean> {
    const what = `delete ${kind} ${namespace ? `${namespace}/` : ''}${name}`;
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', ...(opts?.resourceVersion !== undefined ? { preconditions: { resourceVersion: opts.resourceVersion } } : {}) };
    const res = await this.call('DELETE', objectPath(kind, name, namespace), what, { body });
    if (res.status === 404) return false;
    if (res.status !== 200 && res.status !== 202) throw storeError(res, what);
    return true;
  }

  async *watch<T extends KObject>(kind: string, fromRevision: number, signal: AbortSignal, namespace?: string): AsyncIterable<WatchEvent<T>> {
    // One namespace where the caller needs one (the node leases): not every kubelet's lease.
    const path = collectionPath(kind, namespace);
    let revision = fromRevision;
    let broken = 0;
    while (!signal.aborted) {
      const queue: Array<WatchEvent<T>> = [];
      let wake: (() => void) | undefined;
      let done = false;
      let failure: unknown;
      let progressed = false;
      const onEvent = (e: unknown): void => {
        const ev = e as { type?: unknown; object?: { code?: unknown; metadata?: { resourceVersion?: unknown } } };
        if (ev.type !== 'ERROR') progressed = true;
        if (ev.type === 'BOOKMARK') {
          revision = Math.max(revision, revisionOf(ev.object?.metadata?.resourceVersion, `watch ${kind}`));
        } else if (ev.type === 'ERROR') {
          const code = Number(ev.object?.code ?? 0);
          const { message } = statusOf(code, ev.object);
          failure ??= code === 410 ? new StoreError('Gone', `watch ${kind} from revision ${revision}: ${message}`) : new KubeStatusError(code, 'watch error', message);
        } else if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') {
          const d = this.decode<T>(kind, ev.object);
          const r = revisionOf('ok' in d ? d.ok.metadata.resourceVersion : ev.object?.metadata?.resourceVersion, `watch ${kind}`);
          if (r <= revision) return; // delivered before a resume
          revision = r;
          queue.push('ok' in d ? { type: ev.type, object: d.ok, revision: r } : { type: 'REJECTED', rejected: d.rejected, revision: r });
        } else {
          return;
        }
        wake?.();
      };
      // One request per attempt, ended when the caller stops reading or the signal aborts.
      const attempt = new AbortController();
      const onAbort = (): void => attempt.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      const opened = Date.now();
      const timeoutS = WATCH_TIMEOUT_S + Math.floor(Math.random() * WATCH_JITTER_S);
      const query = { resourceVersion: String(revision), allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutS) };
      const overdue = setTimeout(() => attempt.abort(), (timeoutS + WATCH_MARGIN_S) * 1000);
      let accepted = false;
      const stream = this.client.watch(path, query, attempt.signal, onEvent, () => {
        accepted = true;
      }).then(
        () => undefined,
        (err: unknown) => {
          failure ??= err;
        },
      ).finally(() => {
        done = true;
        wake?.();
      });
      try {
        for (;;) {
          while (queue.length > 0) yield queue.shift() as WatchEvent<T>;
          if (failure instanceof StoreError) throw failure;
          if (done) break;
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = undefined;
        }
      } finally {
        clearTimeout(overdue);
        attempt.abort();
        signal.removeEventListener('abort', onAbort);
        await stream;
      }
      if (signal.aborted) return;
      const status = failure instanceof KubeStatusError ? failure.status : undefined;
      if (status === 410) throw new StoreError('Gone', `watch ${kind} from revision ${revision}: ${(failure as Error).message}`);
      if (status === 404) throw notServed(kind, `watch ${kind}`);
      if (status !== undefined && status !== 429 && status < 500) throw storeError({ status, body: { message: (failure as Error).message } }, `watch ${kind}`);
      // Resume from the last revision seen. A stream that brought something or lived a while
      // was healthy (a server's timeout, a connection that broke after serving): at once, and
      // failures count anew. Otherwise — refused, broken, or ended at once, whatever the
      // reason — with backoff, and after RESUME_TRIES such attempts the caller hears of it.
      const healthy = accepted && (progressed || Date.now() - opened >= HEALTHY_STREAM_MS);
      broken = healthy ? 0 : broken + 1;
      if (broken >= RESUME_TRIES) {
        const why = failure instanceof Error ? failure.message : 'the server keeps ending the watch at once';
        throw new StoreError('Unavailable', `watch ${kind}: ${why}`, { cause: failure });
      }
      if (broken > 0) await new Promise((r) => setTimeout(r, Math.min(RESUME_FIRST_MS * 2 ** (broken - 1), RESUME_MAX_MS)));
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
