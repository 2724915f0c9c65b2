import type { KObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { isStoreError, type Store } from './store.js';

/**
 * A local cache of one kind, kept current by list + watch: relists when the watch is Gone,
 * retries with backoff while the store is unavailable, and reports whether it is connected —
 * controllers must not judge peers dead from a cache that stopped being fed.
 */
export class Informer<T extends KObject> {
  private readonly cache = new Map<string, T>();
  private readonly listeners = new Set<() => void>();
  private resolveSynced: (() => void) | undefined;
  readonly synced: Promise<void>;
  /** ms timestamp of the last successful (re)list, or undefined while disconnected. */
  connectedSince: number | undefined;
  private stopped = false;

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
        const { items, revision } = await this.store.list<T>(this.kind, this.namespace);
        this.cache.clear();
        for (const o of items) this.cache.set(Informer.key(o), o);
        this.connectedSince ??= Date.now();
        this.resolveSynced?.();
        this.changed();
        backoff = 200;
        for await (const ev of this.store.watch<T>(this.kind, revision, signal)) {
          if (this.namespace !== undefined && ev.object.metadata.namespace !== this.namespace) continue;
          if (ev.type === 'DELETED') this.cache.delete(Informer.key(ev.object));
          else this.cache.set(Informer.key(ev.object), ev.object);
          this.changed();
        }
      } catch (err) {
        if (signal.aborted) return;
        if (isStoreError(err, 'Gone')) {
          this.log.info('watch compacted; listing again', { kind: this.kind });
          await new Promise((r) => setTimeout(r, 50)); // never a tight loop, whatever the store says
          continue;
        }
        if (this.connectedSince !== undefined) {
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
