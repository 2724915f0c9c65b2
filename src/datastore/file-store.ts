import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, watch as fsWatch } from 'node:fs';
import { join } from 'node:path';
import type { KObject } from '../model/objects.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { LockFile, LockTimeoutError } from '../util/lock-file.js';
import { forWrite, StoreError, validateObject, type ListResult, type Store, type WatchEvent, type WatchEventType } from './store.js';

/**
 * The embedded datastore: a directory that several agents on one host may share (the lab,
 * tests). Objects are JSON files; every write also appends an event file numbered by the
 * store-wide revision, which is what watchers read (woken by inotify, with a poll as a
 * fallback). Writes take a lock file (O_EXCL, holder pid inside; a dead holder's lock is
 * broken), then do their few small synchronous file operations — microseconds — and release.
 *
 *   <dir>/revision                      the last revision
 *   <dir>/objects/<Kind>/<ns|_>/<name>.json
 *   <dir>/events/<revision, 16 digits>.json   {type, revision, object}
 *   <dir>/compacted                     events up to this revision were deleted
 */
const EVENT_FILE = /^(\d{16})\.json$/;
const KEEP_EVENTS = 20_000;
const POLL_MS = 500;

interface StoredEvent {
  type: WatchEventType;
  revision: number;
  object: KObject;
}

function pad(rev: number): string {
  return String(rev).padStart(16, '0');
}

export class FileStore implements Store {
  readonly backend = 'file' as const;
  private readonly lock: LockFile;
  private closed = false;
  private readonly closers = new Set<() => void>();

  private constructor(readonly dir: string) {
    this.lock = new LockFile(join(dir, 'lock'), `the file datastore ${dir}`);
  }

  static open(dir: string): FileStore {
    for (const d of ['objects', 'events']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    return new FileStore(dir);
  }

  private objectPath(kind: string, name: string, namespace?: string): string {
    return join(this.dir, 'objects', kind, namespace ?? '_', `${name}.json`);
  }

  private readRevision(): number {
    const text = existsSync(join(this.dir, 'revision')) ? readFileSync(join(this.dir, 'revision'), 'utf8').trim() : '0';
    return Number(text) || 0;
  }

  private readCompacted(): number {
    const f = join(this.dir, 'compacted');
    return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) || 0 : 0;
  }

  private readObject<T extends KObject>(path: string): T | undefined {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError('Unavailable', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Runs `fn` holding the directory's lock file (several agents may share the directory). */
  private locked<R>(fn: () => R): Promise<R> {
    return this.lock.run(fn).catch((err: unknown) => {
      if (err instanceof LockTimeoutError) throw new StoreError('Unavailable', `the file datastore ${this.dir}: ${err.message}`, { cause: err });
      throw err;
    });
  }

  private commit(type: WatchEventType, obj: KObject, path: string): KObject {
    const revision = this.readRevision() + 1;
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } };
    if (type === 'DELETED') rmSync(path, { force: true });
    else {
      mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
      writeFileAtomic(path, JSON.stringify(stored));
    }
    const event: StoredEvent = { type, revision, object: type === 'DELETED' ? obj : stored };
    writeFileAtomic(join(this.dir, 'events', `${pad(revision)}.json`), JSON.stringify(event));
    writeFileAtomic(join(this.dir, 'revision'), String(revision));
    if (revision % 1000 === 0) this.compact(revision);
    return stored;
  }

  private compact(revision: number): void {
    const upTo = revision - KEEP_EVENTS;
    if (upTo <= this.readCompacted()) return;
    writeFileAtomic(join(this.dir, 'compacted'), String(upTo));
    for (const name of readdirSync(join(this.dir, 'events'))) {
      const m = EVENT_FILE.exec(name);
      if (m && Number(m[1]) <= upTo) rmSync(join(this.dir, 'events', name), { force: true });
    }
  }

  async get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    return this.readObject<T>(this.objectPath(kind, name, namespace));
  }

  list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    return this.locked(() => {
      const revision = this.readRevision();
      const base = join(this.dir, 'objects', kind);
      const items: T[] = [];
      const namespaces = namespace !== undefined ? [namespace] : existsSync(base) ? readdirSync(base) : [];
      for (const ns of namespaces) {
        const dir = join(base, ns);
        if (!existsSync(dir)) continue;
        for (const f of readdirSync(dir)) {
          if (!f.endsWith('.json') || f.startsWith('.')) continue;
          const o = this.readObject<T>(join(dir, f));
          if (o) items.push(o);
        }
      }
      items.sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
      return { items, revision };
    });
  }

  async create<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    return this.locked(() => {
      const path = this.objectPath(obj.kind, obj.metadata.name, obj.metadata.namespace);
      if (existsSync(path)) throw new StoreError('AlreadyExists', `${obj.kind} ${key(obj)} already exists`);
      const o = forWrite(obj);
      o.metadata.creationTimestamp ??= new Date().toISOString();
      return this.commit('ADDED', o, path) as T;
    });
  }

  async update<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    return this.locked(() => {
      const path = this.objectPath(obj.kind, obj.metadata.name, obj.metadata.namespace);
      const current = this.readObject<KObject>(path);
      if (!current) throw new StoreError('NotFound', `${obj.kind} ${key(obj)} does not exist`);
      const want = obj.metadata.resourceVersion;
      if (want !== undefined && want !== current.metadata.resourceVersion) {
        throw new StoreError('Conflict', `${obj.kind} ${key(obj)} changed: resourceVersion ${want} is stale (now ${current.metadata.resourceVersion})`);
      }
      const o = forWrite(obj);
      if (current.metadata.creationTimestamp) o.metadata.creationTimestamp = current.metadata.creationTimestamp;
      return this.commit('MODIFIED', o, path) as T;
    });
  }

  delete(kind: string, name: string, namespace?: string, opts: { resourceVersion?: string } = {}): Promise<boolean> {
    return this.locked(() => {
      const path = this.objectPath(kind, name, namespace);
      const current = this.readObject<KObject>(path);
      if (!current) return false;
      if (opts.resourceVersion !== undefined && opts.resourceVersion !== current.metadata.resourceVersion) {
        throw new StoreError('Conflict', `${kind} ${namespace ? `${namespace}/` : ''}${name} changed: resourceVersion ${opts.resourceVersion} is stale`);
      }
      this.commit('DELETED', current, path);
      return true;
    });
  }

  async *watch<T extends KObject>(kind: string, fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent<T>> {
    const eventsDir = join(this.dir, 'events');
    let last = fromRevision;
    let wake: (() => void) | undefined;
    const poke = (): void => {
      wake?.();
    };
    const watcher = fsWatch(eventsDir, poke);
    watcher.on('error', poke);
    signal.addEventListener('abort', poke);
    this.closers.add(poke);
    try {
      while (!signal.aborted && !this.closed) {
        if (last < this.readCompacted()) {
          throw new StoreError('Gone', `revision ${last} of the file datastore was compacted; list again`);
        }
        const revs = readdirSync(eventsDir)
          .map((n) => EVENT_FILE.exec(n))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => Number(m[1]))
          .filter((r) => r > last)
          .sort((a, b) => a - b);
        for (const rev of revs) {
          if (signal.aborted) return;
          let ev: StoredEvent;
          try {
            ev = JSON.parse(readFileSync(join(eventsDir, `${pad(rev)}.json`), 'utf8')) as StoredEvent;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('Gone', `revision ${rev} was compacted while being read`);
            throw err;
          }
          last = rev;
          if (ev.object.kind === kind) yield { type: ev.type, object: ev.object as T, revision: ev.revision };
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, POLL_MS);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      watcher.close();
      signal.removeEventListener('abort', poke);
      this.closers.delete(poke);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.closers) c();
  }

  /** Size of the store on disk, for diagnostics. */
  stats(): { revision: number; events: number } {
    return { revision: this.readRevision(), events: readdirSync(join(this.dir, 'events')).length };
  }
}

function key(o: KObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

