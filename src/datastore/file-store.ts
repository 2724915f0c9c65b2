import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, watch as fsWatch } from 'node:fs';
import { join } from 'node:path';
import type { KObject } from '../model/objects.js';
import { TEMP_PREFIX, syncDir, writeFileAtomic, writeFileDurable } from '../util/atomic-file.js';
import { LockFile, LockTimeoutError } from '../util/lock-file.js';
import { annotateByUpdate, forWrite, identityProblem, StoreError, validateObject, type AnnotateOptions, type AnnotationChanges, type ListResult, type RejectedObject, type Store, type WatchEvent, type WatchEventType } from './store.js';
import { compareText } from '../util/compare-text.js';

/**
 * The embedded datastore: a directory that several agents on one host may share (the lab,
 * tests). Objects are JSON files; every write is first an event file numbered by the store-wide
 * revision — the commit point, which watchers read (woken by inotify, with a poll as a fallback).
 * Writes take a lock file (lock-file.ts: any leftover of a dead writer is broken), do a few small
 * synchronous file operations and release.
 *
 *   <dir>/events/<revision, 16 digits>.json   {type, revision, object}   the journal
 *   <dir>/objects/<Kind>/<ns|_>/<name>.json                              the state
 *   <dir>/revision                      the last revision applied to objects/
 *   <dir>/compacted                     events up to this revision were deleted
 *
 * A write, in this order, so that a crash at any point leaves a state every reader handles:
 *   1. the event file, durably (fsync, rename, fsync of the directory): from here the change
 *      is committed; watchers see it exactly once, in revision order, revisions never reused;
 *   2. the object file, durably;  3. the revision file.
 * Whoever takes the lock next first applies any event past `revision` (recover), and every read
 * that could see the difference (list, get) does the same, so a committed change is never lost
 * and never seen half-made. An object or event file that is not usable (zero-length after a power
 * loss on a machine without this ordering, edited by hand) is left out and reported.
 */
const EVENT_FILE = /^(\d{16})\.json$/;
const KEEP_EVENTS = 20_000;
const POLL_MS = 500;

interface StoredEvent {
  type: WatchEventType;
  revision: number;
  object: KObject;
}

/** The points inside a write where the crash tests kill the writer (WEFT_TEST_FILESTORE_CRASH). */
export const FILESTORE_CRASH_POINTS = ['lock-taken', 'event-committed', 'object-written', 'revision-written'] as const;
export type FileStoreCrashPoint = (typeof FILESTORE_CRASH_POINTS)[number];

function pad(rev: number): string {
  return String(rev).padStart(16, '0');
}

type Read<T> = { ok: T } | { bad: string } | undefined;

function readJson(path: string): Read<unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError('Unavailable', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return { ok: JSON.parse(text) as unknown };
  } catch {
    return { bad: text === '' ? 'the file is empty' : 'not JSON' };
  }
}

function readNumber(path: string): number {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

export class FileStore implements Store {
  readonly backend = 'file' as const;
  private readonly lock: LockFile;
  private closed = false;
  private readonly closers = new Set<() => void>();

  private constructor(
    readonly dir: string,
    private readonly crashAt: FileStoreCrashPoint | undefined,
  ) {
    this.lock = new LockFile(join(dir, 'lock'), `the file datastore ${dir}`, 10_000, { afterAcquire: () => this.crashPoint('lock-taken') });
  }

  static open(dir: string): FileStore {
    for (const d of ['objects', 'events']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    const crash = process.env['WEFT_TEST_FILESTORE_CRASH'];
    return new FileStore(dir, crash && (FILESTORE_CRASH_POINTS as readonly string[]).includes(crash) ? (crash as FileStoreCrashPoint) : undefined);
  }

  /** Test-only fault point: the writer dies here, as if the machine or the process crashed. */
  private crashPoint(point: FileStoreCrashPoint): void {
    if (this.crashAt === point) process.kill(process.pid, 'SIGKILL');
  }

  private objectPath(kind: string, name: string, namespace?: string): string {
    return join(this.dir, 'objects', kind, namespace ?? '_', `${name}.json`);
  }

  private eventPath(rev: number): string {
    return join(this.dir, 'events', `${pad(rev)}.json`);
  }

  private readEvent(rev: number): Read<StoredEvent> {
    const r = readJson(this.eventPath(rev));
    if (!r || 'bad' in r) return r;
    const e = r.ok as Partial<StoredEvent>;
    if (e.revision !== rev || !['ADDED', 'MODIFIED', 'DELETED'].includes(e.type as string) || typeof e.object !== 'object' || e.object === null) {
      return { bad: 'not an event of this store' };
    }
    try {
      // Its names become a file path when it is applied: they must be names, not paths.
      validateObject(e.object);
    } catch (err) {
      return { bad: (err as Error).message };
    }
    return { ok: e as StoredEvent };
  }

  private applied(): number {
    return Math.max(readNumber(join(this.dir, 'revision')), readNumber(join(this.dir, 'compacted')));
  }

  /**
   * Applies committed events that a crashed writer did not (everything past `revision`), under
   * the lock. An event that cannot be read is moved aside: it was never acknowledged to its
   * writer (it crashed before fsync returned, or the file was damaged) and must not block the store.
   */
  private recover(): number {
    let rev = this.applied();
    let swept = false;
    for (;;) {
      const next = this.readEvent(rev + 1);
      if (next === undefined) break;
      if (!swept) {
        this.sweepTemps();
        swept = true;
      }
      if ('bad' in next) {
        renameSync(this.eventPath(rev + 1), `${this.eventPath(rev + 1)}.unreadable`);
        break;
      }
      this.apply(next.ok);
      rev++;
      writeFileAtomic(join(this.dir, 'revision'), String(rev));
    }
    return rev;
  }

  private sweepTemps(): void {
    for (const name of readdirSync(join(this.dir, 'events'))) if (name.startsWith(TEMP_PREFIX)) rmSync(join(this.dir, 'events', name), { force: true });
  }

  /** The object files as the event says (idempotent: recovery may apply an event twice). */
  private apply(ev: StoredEvent): void {
    const o = ev.object;
    const path = this.objectPath(o.kind, o.metadata.name, o.metadata.namespace);
    if (ev.type === 'DELETED') {
      try {
        unlinkSync(path);
        syncDir(join(path, '..'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    } else {
      const dir = join(path, '..');
      // A new kind or namespace directory is an entry of its parent: durable too.
      if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) {
        syncDir(join(dir, '..'));
        syncDir(join(dir, '..', '..'));
      }
      writeFileDurable(path, JSON.stringify(o));
    }
  }

  private readObject<T extends KObject>(kind: string, name: string, namespace: string | undefined): Read<T> {
    const r = readJson(this.objectPath(kind, name, namespace));
    if (!r || 'bad' in r) return r;
    const why = identityProblem(r.ok, kind, name, namespace);
    return why ? { bad: why } : { ok: r.ok as T };
  }

  /** Runs `fn` holding the directory's lock file, after applying what a crashed writer left. */
  private locked<R>(fn: (applied: number) => R): Promise<R> {
    return this.lock
      .run(() => fn(this.recover()))
      .catch((err: unknown) => {
        if (err instanceof LockTimeoutError) throw new StoreError('Unavailable', `the file datastore ${this.dir}: ${err.message}`, { cause: err });
        throw err;
      });
  }

  private commit(type: WatchEventType, obj: KObject, applied: number): KObject {
    const revision = applied + 1;
    const stored = type === 'DELETED' ? obj : { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } };
    const event: StoredEvent = { type, revision, object: stored };
    writeFileDurable(this.eventPath(revision), JSON.stringify(event));
    this.crashPoint('event-committed');
    this.apply(event);
    this.crashPoint('object-written');
    writeFileAtomic(join(this.dir, 'revision'), String(revision));
    this.crashPoint('revision-written');
    if (revision % 1000 === 0) this.compact(revision);
    return stored;
  }

  private compact(revision: number): void {
    const upTo = revision - KEEP_EVENTS;
    if (upTo <= readNumber(join(this.dir, 'compacted'))) return;
    writeFileDurable(join(this.dir, 'compacted'), String(upTo));
    for (const name of readdirSync(join(this.dir, 'events'))) {
      const m = EVENT_FILE.exec(name);
      if (m && Number(m[1]) <= upTo) rmSync(join(this.dir, 'events', name), { force: true });
    }
  }

  async get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    // A commit a crashed writer did not apply is applied first (one stat when there is none).
    if (existsSync(this.eventPath(this.applied() + 1))) await this.locked(() => undefined);
    const r = this.readObject<T>(kind, name, namespace);
    if (r && 'bad' in r) throw new StoreError('Invalid', `${kind} ${namespace ? `${namespace}/` : ''}${name} in the file datastore is not usable: ${r.bad}`);
    return r?.ok;
  }

  list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    return this.locked((revision) => {
      const base = join(this.dir, 'objects', kind);
      const items: T[] = [];
      const rejected: RejectedObject[] = [];
      const namespaces = namespace !== undefined ? [namespace] : existsSync(base) ? readdirSync(base) : [];
      for (const ns of namespaces) {
        const dir = join(base, ns);
        if (!existsSync(dir)) continue;
        for (const f of readdirSync(dir)) {
          if (!f.endsWith('.json') || f.startsWith('.')) continue;
          const name = f.slice(0, -'.json'.length);
          const r = this.readObject<T>(kind, name, ns === '_' ? undefined : ns);
          if (!r) continue;
          if ('ok' in r) items.push(r.ok);
          else rejected.push({ kind, name, ...(ns === '_' ? {} : { namespace: ns }), reason: r.bad });
        }
      }
      items.sort((a, b) => compareText(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
      return { items, revision, rejected };
    });
  }

  async create<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    return this.locked((applied) => {
      // Present, even unreadable, is taken: create never overwrites.
      if (this.readObject(obj.kind, obj.metadata.name, obj.metadata.namespace) !== undefined) throw new StoreError('AlreadyExists', `${obj.kind} ${key(obj)} already exists`);
      const o = forWrite(obj);
      o.metadata.creationTimestamp ??= new Date().toISOString();
      return this.commit('ADDED', o, applied) as T;
    });
  }

  async update<T extends KObject>(obj: T): Promise<T> {
    validateObject(obj);
    return this.locked((applied) => {
      const current = this.readObject<KObject>(obj.kind, obj.metadata.name, obj.metadata.namespace);
      if (!current) throw new StoreError('NotFound', `${obj.kind} ${key(obj)} does not exist`);
      const want = obj.metadata.resourceVersion;
      // An unusable stored value has no version to compare: only an unconditional update replaces it.
      const have = 'ok' in current ? current.ok.metadata.resourceVersion : undefined;
      if (want !== undefined && want !== have) {
        throw new StoreError('Conflict', `${obj.kind} ${key(obj)} changed: resourceVersion ${want} is stale (now ${have ?? 'an unusable value'})`);
      }
      const o = forWrite(obj);
      if ('ok' in current && current.ok.metadata.creationTimestamp) o.metadata.creationTimestamp = current.ok.metadata.creationTimestamp;
      return this.commit('MODIFIED', o, applied) as T;
    });
  }

  annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
    return annotateByUpdate<T>(this, kind, name, namespace, changes, opts);
  }

  delete(kind: string, name: string, namespace?: string, opts: { resourceVersion?: string } = {}): Promise<boolean> {
    return this.locked((applied) => {
      const current = this.readObject<KObject>(kind, name, namespace);
      if (!current) return false;
      const have = 'ok' in current ? current.ok.metadata.resourceVersion : undefined;
      if (opts.resourceVersion !== undefined && opts.resourceVersion !== have) {
        throw new StoreError('Conflict', `${kind} ${namespace ? `${namespace}/` : ''}${name} changed: resourceVersion ${opts.resourceVersion} is stale`);
      }
      const last: KObject = 'ok' in current ? current.ok : { apiVersion: 'unknown', kind, metadata: { name, ...(namespace !== undefined ? { namespace } : {}) } };
      this.commit('DELETED', last, applied);
      return true;
    });
  }

  /**
   * Every event of `kind` after `fromRevision`, by reading event files in revision order (they
   * are consecutive: one per revision). An event that cannot be read ends the watch with Gone:
   * the caller lists again, and the list is the truth.
   */
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
        if (last < readNumber(join(this.dir, 'compacted'))) {
          throw new StoreError('Gone', `revision ${last} of the file datastore was compacted; list again`);
        }
        for (;;) {
          if (signal.aborted) return;
          const r = this.readEvent(last + 1);
          if (r === undefined) break;
          if ('bad' in r) throw new StoreError('Gone', `event ${last + 1} of the file datastore cannot be read (${r.bad}); list again`);
          last++;
          const ev = r.ok;
          // Events are the store's own, checked when read (readEvent): a usable object each.
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
    return { revision: this.applied(), events: readdirSync(join(this.dir, 'events')).length };
  }
}

function key(o: KObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}
