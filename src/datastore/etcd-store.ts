import type { Etcd3, IKeyValue } from 'etcd3';
import type { KObject } from '../model/objects.js';
import { annotateByUpdate, forWrite, identityProblem, StoreError, validateObject, type AnnotateOptions, type AnnotationChanges, type ListResult, type RejectedObject, type Store, type WatchEvent, type WatchEventType } from './store.js';

/**
 * The datastore on a real etcd v3 cluster. One key per object under a prefix; an object's
 * resourceVersion is its key's mod_revision, and create/update/delete are transactions that
 * compare it (or create_revision == 0), so concurrent writers never overwrite each other.
 * Watches start at a revision; a lost connection ends a watch with Unavailable (the caller lists
 * again when etcd is back: level-triggered, nothing lost), a compacted start revision with Gone.
 */
const PREFIX = '/weft/v1/';
const CALL_TIMEOUT_MS = 5000;

function keyOf(kind: string, name: string, namespace?: string): string {
  return `${PREFIX}${kind}/${namespace ?? '_'}/${name}`;
}

function unavailable(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError('Unavailable', `etcd: ${what} failed: ${(err as Error).message}`, { cause: err });
}

async function timed<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreError('Unavailable', `etcd: ${what} timed out after ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    throw unavailable(err, what);
  } finally {
    clearTimeout(timer);
  }
}

/** kind, namespace and name from a key (`/weft/v1/Kind/ns|_/name`). */
function keyParts(key: string): { kind: string; name: string; namespace?: string } {
  const [kind = '', ns = '_', ...rest] = key.slice(PREFIX.length).split('/');
  return { kind, name: rest.join('/'), ...(ns === '_' ? {} : { namespace: ns }) };
}

/**
 * A stored value as an object, or why it is not one: anything may sit under a key (etcdctl put,
 * another program), and one bad value must cost that object, never the list, the watch or the
 * process that reads it.
 */
function decode<T extends KObject>(kv: IKeyValue): { ok: T } | { rejected: RejectedObject } {
  const id = keyParts(kv.key.toString('utf8'));
  const reject = (reason: string): { rejected: RejectedObject } => ({ rejected: { ...id, reason } });
  let value: unknown;
  try {
    value = JSON.parse(kv.value.toString('utf8'));
  } catch {
    return reject(kv.value.length === 0 ? 'the value is empty' : 'the value is not JSON');
  }
  const why = identityProblem(value, id.kind, id.name, id.namespace);
  if (why) return reject(why);
  const obj = value as T;
  obj.metadata.resourceVersion = kv.mod_revision;
  return { ok: obj };
}

export class EtcdStore implements Store {
  readonly backend = 'etcd' as const;

  private constructor(
    readonly endpoints: string[],
    private readonly client: Etcd3,
  ) {}

  /**
   * The etcd client (and gRPC under it) is loaded only here: commands that never talk to etcd
   * do not pay for loading it.
   */
  static async connect(endpoints: string[]): Promise<EtcdStore> {
    const [{ Etcd3: Client }, { noop }] = await Promise.all([import('etcd3'), import('cockatiel')]);
    // Callers handle unavailability (retry loops, level-triggered reconcile); the client's own
    // retries and circuit breaker would only hide it for longer.
    const client = new Client({ hosts: endpoints, dialTimeout: 3000, faultHandling: { host: () => noop, global: noop } });
    return new EtcdStore(endpoints, client);
  }

  async get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    const res = await timed(this.client.get(keyOf(kind, name, namespace)).exec(), `get ${kind} ${name}`);
    const kv = res.kvs[0];
    if (!kv) return undefined;
    const d = decode<T>(kv);
    if ('rejected' in d) throw new StoreError('Invalid', `${kind} ${namespace ? `${namespace}/` : ''}${name} in etcd is not usable: ${d.rejected.reason}`);
    return d.ok;
  }

  /** The key's revision, whatever its value holds (a conflict's "now"), or undefined if absent. */
  private async modRevision(key: string): Promise<string | undefined> {
    const res = await timed(this.client.get(key).exec(), `get ${key}`);
    return res.kvs[0]?.mod_revision;
  }

  async list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    const prefix = namespace !== undefined ? `${PREFIX}${kind}/${namespace}/` : `${PREFIX}${kind}/`;
    const res = await timed(this.client.getAll().prefix(prefix).exec(), `list ${kind}`);
    const items: T[] = [];
    const rejected: RejectedObject[] = [];
    for (const kv of res.kvs) {
      const d = decode<T>(kv);
      if ('ok' in d) items.push(d.ok);
      else rejected.push(d.rejected);
    }
    return { items, revision: Number(res.header.revision), rejected };
  }

  async create<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    const key = keyOf(obj.kind, obj.metadata.name, obj.metadata.namespace);
    const o = forWrite(obj);
    o.metadata.creationTimestamp ??= new Date().toISOString();
    const res = await timed(this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(JSON.stringify(o))).commit(), `create ${obj.kind}`);
    if (!res.succeeded) throw new StoreError('AlreadyExists', `${obj.kind} ${describe(obj)} already exists`);
    o.metadata.resourceVersion = res.header.revision;
    return o;
  }

  async update<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    const key = keyOf(obj.kind, obj.metadata.name, obj.metadata.namespace);
    const want = obj.metadata.resourceVersion;
    const o = forWrite(obj);
    const put = this.client.put(key).value(JSON.stringify(o));
    const res = await timed(
      want !== undefined ? this.client.if(key, 'Mod', '==', want).then(put).commit() : this.client.if(key, 'Create', '>', 0).then(put).commit(),
      `update ${obj.kind}`,
    );
    if (!res.succeeded) {
      const now = await this.modRevision(key);
      if (now === undefined) throw new StoreError('NotFound', `${obj.kind} ${describe(obj)} does not exist`);
      throw new StoreError('Conflict', `${obj.kind} ${describe(obj)} changed: resourceVersion ${want} is stale (now ${now})`);
    }
    o.metadata.resourceVersion = res.header.revision;
    return o;
  }

  annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
    return annotateByUpdate<T>(this, kind, name, namespace, changes, opts);
  }

  async delete(kind: string, name: string, namespace?: string, opts: { resourceVersion?: string } = {}): Promise<boolean> {
    const key = keyOf(kind, name, namespace);
    if (opts.resourceVersion === undefined) {
      const res = await timed(this.client.delete().key(key).exec(), `delete ${kind}`);
      return Number(res.deleted) > 0;
    }
    const res = await timed(this.client.if(key, 'Mod', '==', opts.resourceVersion).then(this.client.delete().key(key)).commit(), `delete ${kind}`);
    if (res.succeeded) return true;
    if ((await this.modRevision(key)) === undefined) return false;
    throw new StoreError('Conflict', `${kind} ${namespace ? `${namespace}/` : ''}${name} changed: resourceVersion ${opts.resourceVersion} is stale`);
  }

  async *watch<T extends KObject>(kind: string, fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent<T>> {
    const queue: Array<WatchEvent<T> | StoreError> = [];
    let wake: (() => void) | undefined;
    const push = (x: WatchEvent<T> | StoreError): void => {
      queue.push(x);
      wake?.();
    };
    // watcher() (not create()): listeners must be on before the first response, or a watch
    // cancelled at once (a compacted start revision) reports its error to nobody.
    const watcher = this.client.watch().prefix(`${PREFIX}${kind}/`).startRevision(String(fromRevision + 1)).withPreviousKV().watcher();
    const emit = (type: WatchEventType, kv: IKeyValue, prev?: IKeyValue): void => {
      const revision = Number(kv.mod_revision);
      if (type === 'DELETED') {
        // Whatever was there (usable or not) is gone: the key is all a reader needs.
        const d = prev ? decode<T>(prev) : undefined;
        const id = keyParts(kv.key.toString('utf8'));
        const object = d && 'ok' in d ? d.ok : ({ apiVersion: 'unknown', kind: id.kind, metadata: { name: id.name, ...(id.namespace ? { namespace: id.namespace } : {}) } } as T);
        push({ type, object, revision });
        return;
      }
      const d = decode<T>(kv);
      push('ok' in d ? { type, object: d.ok, revision } : { type: 'REJECTED', rejected: d.rejected, revision });
    };
    watcher.on('put', (kv, prev) => emit(prev ? 'MODIFIED' : kv.version === '1' ? 'ADDED' : 'MODIFIED', kv, prev));
    watcher.on('delete', (kv, prev) => emit('DELETED', kv, prev));
    // The client would reconnect on its own and resume, but then nobody would know the cache
    // went stale in between: end the watch, and let the caller relist when etcd is back.
    watcher.on('disconnected', (err) => {
      push(new StoreError('Unavailable', `etcd watch of ${kind} disconnected: ${err.message}`, { cause: err }));
    });
    watcher.on('error', (err) => {
      // etcd 3.4 cancels a watch on a compacted revision with an empty cancel_reason (the
      // client surfaces "Watcher canceled: "); other cancellations name their reason. Either
      // way, listing again is the right reaction to Gone.
      const gone = /compact/i.test(err.message) || /canceled:\s*$/.test(err.message);
      push(new StoreError(gone ? 'Gone' : 'Unavailable', `etcd watch of ${kind}: ${err.message}`, { cause: err }));
    });
    const onAbort = (): void => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next instanceof StoreError) throw next;
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      // A watch the server already cancelled never gets a reply to cancel(): do not wait long.
      await Promise.race([watcher.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function describe(o: KObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}
