import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { KObject } from '../model/objects.js';
import { silentLogger } from '../util/log.js';
import { FileStore } from './file-store.js';
import { Informer } from './informer.js';
import { StoreError, type AnnotateOptions, type AnnotationChanges, type ListResult, type Store, type WatchEvent } from './store.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ns = (name: string): KObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`not: ${what}`);
    await sleep(10);
  }
}

/**
 * The real file store, except that its watch can be made to fail with Gone at the next event
 * (a compaction the informer did not see coming). Only that failure is simulated.
 */
class GoneOnDemand implements Store {
  readonly backend = 'file' as const;
  goneAtNextEvent = false;
  lists = 0;
  constructor(private readonly inner: FileStore) {}
  get<T extends KObject>(kind: string, name: string, namespace?: string): Promise<T | undefined> {
    return this.inner.get<T>(kind, name, namespace);
  }
  list<T extends KObject>(kind: string, namespace?: string): Promise<ListResult<T>> {
    this.lists++;
    return this.inner.list<T>(kind, namespace);
  }
  create<T extends KObject>(obj: T): Promise<T> {
    return this.inner.create(obj);
  }
  update<T extends KObject>(obj: T): Promise<T> {
    return this.inner.update(obj);
  }
  delete(kind: string, name: string, namespace?: string, opts?: { resourceVersion?: string }): Promise<boolean> {
    return this.inner.delete(kind, name, namespace, opts);
  }

  annotate<T extends KObject>(kind: string, name: string, namespace: string | undefined, changes: AnnotationChanges, opts?: AnnotateOptions): Promise<T> {
    return this.inner.annotate<T>(kind, name, namespace, changes, opts);
  }
  async *watch<T extends KObject>(kind: string, from: number, signal: AbortSignal): AsyncIterable<WatchEvent<T>> {
    for await (const ev of this.inner.watch<T>(kind, from, signal)) {
      if (this.goneAtNextEvent) {
        this.goneAtNextEvent = false;
        throw new StoreError('Gone', 'compacted (simulated)');
      }
      yield ev;
    }
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('Informer (on a file store)', () => {
  it('lists, follows changes, and relists when its watch is Gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-inf-'));
    const store = new GoneOnDemand(FileStore.open(dir));
    const ac = new AbortController();
    try {
      await store.create(ns('a'));
      const inf = new Informer<KObject>(store, 'Namespace', silentLogger);
      let changes = 0;
      inf.onChange(() => changes++);
      void inf.run(ac.signal);
      await inf.synced;
      assert.deepEqual(inf.items().map((o) => o.metadata.name), ['a']);
      assert.notEqual(inf.connectedSince, undefined);
      await store.create(ns('b'));
      await store.delete('Namespace', 'a');
      await until('b in, a out', () => inf.get('b') !== undefined && inf.get('a') === undefined);
      // The event for c never arrives (its watch is Gone): c is seen through a new list.
      const lists = store.lists;
      store.goneAtNextEvent = true;
      await store.create(ns('c'));
      await until('c seen after the relist', () => inf.get('c') !== undefined);
      assert.equal(store.lists, lists + 1, 'exactly one relist');
      assert.ok(changes >= 3);
    } finally {
      ac.abort();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
