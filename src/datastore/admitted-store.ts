import { AdmissionError, admitObject, tryAdmit } from '../model/admission.js';
import type { KObject } from '../model/objects.js';
import { applyAnnotations, StoreError, type AnnotateOptions, type AnnotationChanges, type ListResult, type RejectedObject, type Store, type WatchEvent } from './store.js';

/**
 * A store whose every read is admitted (model/admission.ts) before anyone sees it, and whose
 * every write is admitted before it is sent: what an API server gives the datastores that have
 * none. Wrapped once around the store that agents, the CLI and the lab open, so no value from
 * the datastore reaches a controller, a kernel command or a file name unchecked.
 *
 * An object that fails is left out whole and reported as a RejectedObject — from a list, as a
 * REJECTED watch event (its previous version leaves the view), as Invalid from get — and
 * everything else is served as before. DELETED events pass as they are: only the key matters.
 */
function rejectedOf(o: KObject, reason: string): RejectedObject {
  const meta = (o as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  return {
    kind: String(o.kind),
    name: String(meta?.name ?? '?'),
    ...(typeof meta?.namespace === 'string' ? { namespace: meta.namespace } : {}),
    reason,
  };
}

function admitWrite<T extends KObject>(obj: T): T {
  try {
    return admitObject(obj) as T;
  } catch (err) {
    if (err instanceof AdmissionError) throw new StoreError('Invalid', err.message, { cause: err });
    throw err;
  }
}

class AdmittedStore implements Store {
  constructor(private readonly inner: Store) {}

  get backend(): Store['backend'] {
    return this.inner.backend;
  }

  async get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    const raw = await this.inner.get<T>(kind, name, namespace);
    return raw === undefined ? undefined : this.admitRead(raw, kind, name, namespace);
  }

  private admitRead<T extends KObject>(raw: T, kind: string, name: string, namespace: string | undefined): T {
    const r = tryAdmit(raw);
    if (!r.ok) throw new StoreError('Invalid', `${kind} ${namespace ? `${namespace}/` : ''}${name} in the datastore is left out: ${r.reason}`);
    return r.object as T;
  }

  async list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    const raw = await this.inner.list<T>(kind, namespace);
    const items: T[] = [];
    const rejected = [...raw.rejected];
    for (const o of raw.items) {
      const r = tryAdmit(o);
      if (r.ok) items.push(r.object as T);
      else rejected.push(rejectedOf(o, r.reason));
    }
    return { items, revision: raw.revision, rejected };
  }

  async *watch<T extends KObject>(kind: string, fromRevision: number, signal: AbortSignal, namespace?: string): AsyncIterable<WatchEvent<T>> {
    for await (const ev of this.inner.watch<T>(kind, fromRevision, signal, namespace)) {
      if (ev.type === 'REJECTED' || ev.type === 'DELETED') {
        yield ev;
        continue;
      }
      const r = tryAdmit(ev.object);
      yield r.ok ? { ...ev, object: r.object as T } : { type: 'REJECTED', rejected: rejectedOf(ev.object, r.reason), revision: ev.revision };
    }
  }

  create<T extends KObject>(obj: T): Promise<T> {
    return this.inner.create(admitWrite(obj));
  }

  update<T extends KObject>(obj: T): Promise<T> {
    return this.inner.update(admitWrite(obj));
  }

  /** The object as it would be after the change is admitted before the change is sent. */
  async annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
    const current = await this.inner.get<T>(kind, name, namespace);
    if (!current) throw new StoreError('NotFound', `${kind} ${namespace ? `${namespace}/` : ''}${name} does not exist`);
    if (opts?.uid !== undefined && current.metadata.uid !== opts.uid) throw new StoreError('Conflict', `${kind} ${namespace ? `${namespace}/` : ''}${name} is another object by now (uid ${current.metadata.uid ?? 'none'}, not ${opts.uid})`);
    const annotations = applyAnnotations(current.metadata.annotations, changes);
    if (!annotations) return this.admitRead(current, kind, name, namespace);
    admitWrite({ ...current, metadata: { ...current.metadata, annotations } });
    // The uid is checked on this read: the store need not read again, only write on this version.
    const at = opts?.uid !== undefined && current.metadata.resourceVersion !== undefined ? { ...opts, readAt: current.metadata.resourceVersion } : opts;
    return this.admitRead(await this.inner.annotate<T>(kind, name, namespace, changes, at), kind, name, namespace);
  }

  delete(kind: string, name: string, namespace?: string, opts?: { resourceVersion?: string }): Promise<boolean> {
    return this.inner.delete(kind, name, namespace, opts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export function admitted(store: Store): Store {
  return store instanceof AdmittedStore ? store : new AdmittedStore(store);
}
