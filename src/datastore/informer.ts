import type { KObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { describeRejected, isStoreError, type RejectedObject, type Store } from './store.js';

/**
 * A local cache of one kind, kept current by list + watch: relists when the watch is Gone,
 * retries with backoff while the store is unavailable, and reports whether it is connected —
 * controllers must not judge peers dead from a cache that stopped being fed. Stored values that
 * are not usable objects (RejectedObject) are left out of the cache and reported by `rejected()`.
 */
export class Informer<T extends KObject> {
  private readonly cache = new Map<string, T>();
  private readonly bad = new Map<string, RejectedObject>();
  private readonly listeners = new Set<() => void>();
  private resolveSynced: (() => void) | undefined;
  readonly synced: Promise<void>;
  /** True once the first list is in the cache (until then an empty cache means "not known"). */
  hasSynced = false;
  /** ms timestamp of the last successful (re)list, or undefined while disconnected. */
  connectedSince: number | undefined;
  private stopped = false;
  /** Times the list + watch started over (compacted, or the datastore lost): a metric. */
  watchRestarts = 0;

  constructor(
    private readonly store: Store,
    readonly kind: string,
    private readonly log: Logger,
    private readonly namespace?: string,
  ) {
    this.synced = new Promise((r) => {
      this.resolveSynced = r;
    });
  }

  static key(o: { metadata: { name: string; namespace?: string } }): string {
    return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  }

  items(): T[] {
    return [...this.cache.values()];
  }

  /** Objects of this kind left out because they are not usable, one line each. */
  rejected(): string[] {
    return [...this.bad.values()].map(describeRejected).sort();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.log.error('informer listener failed', { kind: this.kind, error: (err as Error).message });
      }
    }
  }

  /** Runs until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = 200;
    while (!signal.aborted && !this.stopped) {
      try {
        const { items, revision, rejected } = await this.store.list<T>(this.kind, this.namespace);
        this.cache.clear();
        for (const o of items) this.cache.set(Informer.key(o), o);
        this.bad.clear();
        for (const r of rejected) this.bad.set(Informer.key({ metadata: r }), r);
        if (rejected.length) this.log.warn('objects left out: not usable', { kind: this.kind, rejected: rejected.map(describeRejected) });
        this.connectedSince ??= Date.now();
        this.hasSynced = true;
        this.resolveSynced?.();
        this.changed();
        backoff = 200;
        for await (const ev of this.store.watch<T>(this.kind, revision, signal, this.namespace)) {
          if (ev.type === 'REJECTED') {
            if (this.namespace !== undefined && ev.rejected.namespace !== this.namespace) continue;
            const k = Informer.key({ metadata: ev.rejected });
            this.cache.delete(k);
            this.bad.set(k, ev.rejected);
            this.log.warn('object left out: not usable', { kind: this.kind, object: describeRejected(ev.rejected) });
          } else {
            if (this.namespace !== undefined && ev.object.metadata.namespace !== this.namespace) continue;
            const k = Informer.key(ev.object);
            this.bad.delete(k);
            if (ev.type === 'DELETED') this.cache.delete(k);
            else this.cache.set(k, ev.object);
          }
          this.changed();
        }
      } catch (err) {
        if (signal.aborted) return;
        this.watchRestarts++;
        if (isStoreError(err, 'Gone')) {
          this.log.info('watch compacted; listing again', { kind: this.kind });
          await new Promise((r) => setTimeout(r, 50)); // never a tight loop, whatever the store says
          continue;
        }
        if (!isStoreError(err)) {
          // Not the store's kind of failure: a bug. Keep the cache and the loop alive, say it loudly.
          this.log.error('informer failed; listing again', { kind: this.kind, error: (err as Error).message, stack: (err as Error).stack });
        } else if (this.connectedSince !== undefined) {
          this.log.warn('datastore unavailable; keeping the last known state', { kind: this.kind, error: (err as Error).message });
        }
        this.connectedSince = undefined;
        this.changed();
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }
}
