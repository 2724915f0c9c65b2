import type { KObject } from '../model/objects.js';
import { printable } from '../util/printable.js';

export { printable };

/**
 * The cluster datastore, one contract for every backend (file, etcd, the Kubernetes API): list,
 * get, watch from a revision, create/update with optimistic concurrency, delete.
 *
 * Revisions are one counter for the whole store (etcd's revision; the file store keeps its
 * own). An object's metadata.resourceVersion is the revision of its last write; an update or
 * delete that names a resourceVersion succeeds only if the object is still at it.
 */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/**
 * A stored value that is not a usable object: not JSON, not an object of the kind and name its
 * key says, or (from the admitting store) one that fails admission. Left out of lists and
 * watches, reported by key — never fatal to a list, a watch or a process.
 */
export interface RejectedObject {
  kind: string;
  name: string;
  namespace?: string;
  reason: string;
}

export type WatchEvent<T extends KObject = KObject> =
  | {
      type: WatchEventType;
      /** For DELETED, the object as it was last stored. */
      object: T;
      revision: number;
    }
  /** A write of something that is not a usable object: whatever was there is gone from view. */
  | { type: 'REJECTED'; rejected: RejectedObject; revision: number };

export interface ListResult<T extends KObject = KObject> {
  items: T[];
  /** The store's revision the list is a snapshot of: watch from here. */
  revision: number;
  /** Values under the listed keys that are not usable objects. */
  rejected: RejectedObject[];
}

/** One line for people: names and reason come from outside, so they are made printable. */
export function describeRejected(r: RejectedObject): string {
  return `${printable(r.kind)} ${r.namespace ? `${printable(r.namespace)}/` : ''}${printable(r.name)}: ${printable(r.reason, 2000)}`;
}

/**
 * Checks a decoded value is an object of the kind, name and namespace its key says (pure):
 * the store's own view of "decodable". Returns the reason when it is not.
 */
export function identityProblem(value: unknown, kind: string, name: string, namespace: string | undefined): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const o = value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  if (o.kind !== kind) return `its kind is ${JSON.stringify(o.kind)}, not ${kind}`;
  if (typeof o.metadata !== 'object' || o.metadata === null) return 'it has no metadata';
  if (o.metadata.name !== name) return `its metadata.name is ${JSON.stringify(o.metadata.name)?.slice(0, 80)}, not ${name}`;
  if ((o.metadata.namespace ?? undefined) !== namespace) return `its metadata.namespace is ${JSON.stringify(o.metadata.namespace)?.slice(0, 80)}, not ${namespace ?? 'absent'}`;
  return undefined;
}

export type StoreErrorReason = 'AlreadyExists' | 'Conflict' | 'NotFound' | 'Gone' | 'Unavailable' | 'Invalid';

export class StoreError extends Error {
  readonly code = 'ERR_STORE';
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export function isStoreError(err: unknown, reason?: StoreErrorReason): err is StoreError {
  return err instanceof StoreError && (reason === undefined || err.reason === reason);
}

export interface Store {
  readonly backend: 'file' | 'etcd' | 'kubernetes';
  /** Invalid when the stored value is not a usable object (see RejectedObject). */
  get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined>;
  list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>>;
  /** AlreadyExists if it exists. Returns the stored object with its resourceVersion. */
  create<T extends KObject>(obj: T): Promise<T>;
  /** Conflict if metadata.resourceVersion is set and stale; NotFound if absent. */
  update<T extends KObject>(obj: T): Promise<T>;
  /** False if it did not exist; Conflict if resourceVersion is given and stale. */
  delete(kind: string, name: string, namespace?: string, opts?: { resourceVersion?: string }): Promise<boolean>;
  /**
   * Sets (a string) or removes (null) these annotations and touches nothing else of the object,
   * whoever else writes it meanwhile (the kubelet a Pod's status, say): a merge patch on the
   * Kubernetes API, a compare-and-swap loop elsewhere. NotFound if the object does not exist;
   * with `uid`, Conflict if it is another object of that name (deleted and made anew).
   */
  annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T>;
  /**
   * Every change of `kind` with a revision above `fromRevision`, in order, until `signal`
   * aborts. Throws StoreError Gone when those revisions were compacted away (list again).
   * With `namespace`, a store may leave out other namespaces' changes (the Kubernetes API
   * watches only that namespace); callers filter anyway.
   */
  watch<T extends KObject>(kind: string, fromRevision: number, signal: AbortSignal, namespace?: string): AsyncIterable<WatchEvent<T>>;
  close(): Promise<void>;
}

export type AnnotationChanges = Readonly<Record<string, string | null>>;

export interface AnnotateOptions {
  uid?: string;
  /**
   * With `uid`: the resourceVersion at which the caller read the object and found that uid — a
   * read the store may then spare (it writes on that version only, and reads again if it moved).
   */
  readAt?: string;
}

/** The annotations after `changes`; undefined when they change nothing. */
export function applyAnnotations(current: Readonly<Record<string, string>> | undefined, changes: AnnotationChanges): Record<string, string> | undefined {
  const next: Record<string, string> = { ...(current ?? {}) };
  let changed = false;
  for (const [k, v] of Object.entries(changes)) {
    if (v === null ? k in next : next[k] !== v) changed = true;
    if (v === null) delete next[k];
    else next[k] = v;
  }
  return changed ? next : undefined;
}

/** Store.annotate for stores without a patch: read, change, write if unchanged meanwhile, retry. */
export async function annotateByUpdate<T extends KObject>(store: Pick<Store, 'get' | 'update'>, kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
  const what = `${kind} ${namespace ? `${namespace}/` : ''}${name}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await store.get<T>(kind, name, namespace);
    if (!current) throw new StoreError('NotFound', `${what} does not exist`);
    if (opts?.uid !== undefined && current.metadata.uid !== opts.uid) throw new StoreError('Conflict', `${what}: uid ${opts.uid} is not the object's (${current.metadata.uid ?? 'none'})`);
    const annotations = applyAnnotations(current.metadata.annotations, changes);
    if (!annotations) return current;
    try {
      return await store.update<T>({ ...current, metadata: { ...current.metadata, annotations } });
    } catch (err) {
      if (!isStoreError(err, 'Conflict')) throw err;
    }
  }
  throw new StoreError('Conflict', `${what}: too many concurrent writers`);
}

/** Checks the parts of an object every store relies on. */
export function validateObject(obj: KObject): void {
  const problems: string[] = [];
  if (typeof obj.apiVersion !== 'string' || obj.apiVersion === '') problems.push('apiVersion is required');
  if (typeof obj.kind !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(obj.kind)) problems.push('kind must be a name such as Pod');
  const name = obj.metadata?.name;
  if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
    problems.push(`metadata.name ${JSON.stringify(name)} must be a lowercase DNS name (a-z, 0-9, "-", ".")`);
  }
  const ns = obj.metadata?.namespace;
  if (ns !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) {
    problems.push(`metadata.namespace ${JSON.stringify(ns)} must be a DNS label`);
  }
  if (problems.length) throw new StoreError('Invalid', `invalid ${obj.kind ?? 'object'}: ${problems.join('; ')}`);
}

/** Deep copy without the store-owned fields, ready to write. */
export function forWrite<T extends KObject>(obj: T): T {
  const copy = structuredClone(obj);
  delete copy.metadata.resourceVersion;
  return copy;
}
