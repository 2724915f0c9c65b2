import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { KObject } from '../model/objects.js';
import { isStoreError, type Store, type WatchEvent } from './store.js';

/**
 * The behaviour every Store backend must have. Each backend's test calls this with a factory;
 * a factory called twice gives two clients of the same store (two agents).
 */
export interface ContractOptions {
  /** A fresh, empty store, and a second client of that same store. */
  open(): Promise<{ a: Store; b: Store; cleanup: () => Promise<void> }>;
  /** Makes revisions up to `revision` unavailable to watches (compaction). */
  compact(stores: { a: Store }, revision: number): Promise<void>;
  /**
   * Writes raw bytes where the store keeps that object, past every check (a hand edit, etcdctl
   * put). Absent where no such write can reach a client, with the reason in `noRawWrites`.
   */
  putRaw?(stores: { a: Store }, kind: string, name: string, namespace: string | undefined, bytes: string): Promise<void>;
  noRawWrites?: string;
  /** Whether such a write is an event watchers see (etcd: yes; a hand-edited file: no). */
  rawWritesAreEvents: boolean;
}

/** An event as text, for comparisons. */
export function eventText(e: WatchEvent): string {
  return e.type === 'REJECTED' ? `REJECTED ${e.rejected.name}` : `${e.type} ${e.object.metadata.name}`;
}

const objectOf = (e: WatchEvent | undefined): KObject | undefined => (e && e.type !== 'REJECTED' ? e.object : undefined);

const pod = (name: string, ns = 'default', labels: Record<string, string> = {}): KObject & { spec: object } => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'busybox' }] },
});

async function collect(store: Store, kind: string, from: number, count: number, timeoutMs = 10_000): Promise<WatchEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const out: WatchEvent[] = [];
  try {
    for await (const ev of store.watch(kind, from, ac.signal)) {
      out.push(ev);
      if (out.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

export function runStoreContract(o: ContractOptions): void {
  const withStores = (fn: (s: { a: Store; b: Store }) => Promise<void>) => async () => {
    const s = await o.open();
    try {
      await fn(s);
    } finally {
      await s.cleanup();
    }
  };

  it('create, get, list: objects come back with a resourceVersion; create of an existing name is AlreadyExists', withStores(async ({ a, b }) => {
    const created = await a.create(pod('web'));
    assert.ok(created.metadata.resourceVersion);
    const got = await b.get<KObject>('Pod', 'web', 'default');
    assert.equal(got?.metadata.resourceVersion, created.metadata.resourceVersion);
    assert.equal(await a.get('Pod', 'nosuch', 'default'), undefined);
    await assert.rejects(b.create(pod('web')), (e: unknown) => isStoreError(e, 'AlreadyExists'));
    // The namespace first: the Kubernetes API refuses objects in a namespace that does not exist.
    await a.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' } });
    await a.create(pod('db', 'prod'));
    const all = await b.list('Pod');
    assert.deepEqual(all.items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort(), ['default/web', 'prod/db']);
    assert.deepEqual((await b.list('Pod', 'prod')).items.map((p) => p.metadata.name), ['db']);
    assert.ok(all.revision >= Number(created.metadata.resourceVersion));
  }));

  it('optimistic concurrency: a stale resourceVersion is a Conflict, and of two racing writers exactly one wins', withStores(async ({ a, b }) => {
    const v1 = await a.create(pod('web'));
    const v2 = await a.update({ ...v1, metadata: { ...v1.metadata, labels: { app: 'v2' } } });
    assert.notEqual(v2.metadata.resourceVersion, v1.metadata.resourceVersion);
    await assert.rejects(b.update({ ...v1, metadata: { ...v1.metadata, labels: { app: 'stale' } } }), (e: unknown) => isStoreError(e, 'Conflict'));
    await assert.rejects(a.update(pod('ghost')), (e: unknown) => isStoreError(e, 'NotFound'));
    const race = await Promise.allSettled([
      a.update({ ...v2, metadata: { ...v2.metadata, labels: { app: 'a' } } }),
      b.update({ ...v2, metadata: { ...v2.metadata, labels: { app: 'b' } } }),
    ]);
    assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one racing update wins');
    const creates = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).create(pod('once'))));
    assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one racing create wins');
  }));

  it('annotate: sets and removes only the named annotations, keeps the rest, loses no concurrent write; NotFound when absent, Conflict for another uid', withStores(async ({ a, b }) => {
    const v1 = await a.create({ ...pod('web'), metadata: { ...pod('web').metadata, labels: { app: 'web' }, annotations: { keep: 'me', old: 'x' } } });
    // Another writer between a read and the annotate: its change survives.
    await b.update({ ...v1, metadata: { ...v1.metadata, labels: { app: 'web', tier: '2' } } });
    const got = await a.annotate<KObject>('Pod', 'web', 'default', { 'weft.io/pod-ips': '10.244.0.5', old: null });
    assert.deepEqual(got.metadata.annotations, { keep: 'me', 'weft.io/pod-ips': '10.244.0.5' });
    const seen = await b.get<KObject>('Pod', 'web', 'default');
    assert.deepEqual([seen?.metadata.annotations, seen?.metadata.labels], [{ keep: 'me', 'weft.io/pod-ips': '10.244.0.5' }, { app: 'web', tier: '2' }]);
    const again = await b.annotate<KObject>('Pod', 'web', 'default', { old: null });
    assert.deepEqual(again.metadata.annotations, { keep: 'me', 'weft.io/pod-ips': '10.244.0.5' }, 'removing what is not there changes nothing');
    // Two writers at once, each on its own key: neither change is lost.
    await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).annotate('Pod', 'web', 'default', { [`k${i}`]: String(i) })));
    const both = await a.get<KObject>('Pod', 'web', 'default');
    assert.deepEqual(Object.keys(both?.metadata.annotations ?? {}).sort(), ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'keep', 'weft.io/pod-ips']);
    await assert.rejects(a.annotate('Pod', 'ghost', 'default', { x: 'y' }), (e: unknown) => isStoreError(e, 'NotFound'));
    const uid = both?.metadata.uid;
    if (uid !== undefined) {
      await a.annotate('Pod', 'web', 'default', { y: 'z' }, { uid });
      // A read the caller made that is stale by now: the store reads again, and writes.
      const stale = await a.annotate<KObject>('Pod', 'web', 'default', { y: 'stale-read' }, { uid, readAt: v1.metadata.resourceVersion as string });
      assert.equal(stale.metadata.annotations?.['y'], 'stale-read');
    }
    await assert.rejects(a.annotate('Pod', 'web', 'default', { y: 'w' }, { uid: '00000000-0000-4000-8000-000000000000' }), (e: unknown) => isStoreError(e, 'Conflict'), 'another object of that name');
  }));

  it('delete: true once, false after; a stale resourceVersion is a Conflict', withStores(async ({ a, b }) => {
    const v1 = await a.create(pod('web'));
    await a.update({ ...v1, metadata: { ...v1.metadata, labels: { x: '1' } } });
    await assert.rejects(b.delete('Pod', 'web', 'default', { resourceVersion: v1.metadata.resourceVersion as string }), (e: unknown) => isStoreError(e, 'Conflict'));
    assert.equal(await b.delete('Pod', 'web', 'default'), true);
    assert.equal(await a.delete('Pod', 'web', 'default'), false);
    assert.equal(await a.get('Pod', 'web', 'default'), undefined);
  }));

  it('watch: every change of the kind after a revision, in order, DELETED carrying the object', withStores(async ({ a, b }) => {
    const start = (await b.list('Pod')).revision;
    const events = collect(b, 'Pod', start, 4);
    const v1 = await a.create(pod('web'));
    await a.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other-kind' } });
    await a.update({ ...v1, metadata: { ...v1.metadata, labels: { app: 'web' } } });
    await a.create(pod('db'));
    await a.delete('Pod', 'web', 'default');
    const got = await events;
    assert.deepEqual(got.map(eventText), ['ADDED web', 'MODIFIED web', 'ADDED db', 'DELETED web']);
    assert.deepEqual(objectOf(got[1])?.metadata.labels, { app: 'web' });
    assert.deepEqual(objectOf(got[3])?.metadata.labels, { app: 'web' }, 'DELETED carries the last state');
    const revs = got.map((e) => e.revision);
    assert.deepEqual([...revs].sort((x, y) => x - y), revs, 'in revision order');
  }));

  it('no event lost across a reconnect: a watch resumed from the last revision seen gets exactly the rest', withStores(async ({ a, b }) => {
    const start = (await b.list('Pod')).revision;
    for (let i = 0; i < 5; i++) await a.create(pod(`p${i}`));
    const first = await collect(b, 'Pod', start, 2);
    const resumeFrom = first[first.length - 1]?.revision as number;
    for (let i = 5; i < 8; i++) await a.create(pod(`p${i}`));
    const rest = await collect(b, 'Pod', resumeFrom, 6);
    assert.deepEqual([...first, ...rest].map((e) => objectOf(e)?.metadata.name), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7']);
  }));

  it('a watch from a compacted revision ends with Gone (the caller lists again)', withStores(async ({ a }) => {
    const start = (await a.list('Pod')).revision;
    for (let i = 0; i < 3; i++) await a.create(pod(`c${i}`));
    const last = (await a.list('Pod')).revision;
    await o.compact({ a }, last);
    await assert.rejects(collect(a, 'Pod', start, 1, 5000), (e: unknown) => isStoreError(e, 'Gone'));
  }));

  it('a stored value that is not a usable object is left out and reported, never fatal: list, get, watch, overwrite', { skip: o.putRaw ? false : (o.noRawWrites ?? true) }, withStores(async ({ a, b }) => {
    await a.create(pod('good'));
    const start = (await b.list('Pod')).revision;
    const events = collect(b, 'Pod', start, o.rawWritesAreEvents ? 5 : 1);
    for (const [name, bytes] of [['garbage', '{not json'], ['empty', ''], ['liar', JSON.stringify(pod('someone-else'))], ['array', '[1,2]']] as const) {
      await o.putRaw?.({ a }, 'Pod', name, 'default', bytes);
    }
    await a.create(pod('after'));
    const got = await events;
    const want = o.rawWritesAreEvents ? ['REJECTED garbage', 'REJECTED empty', 'REJECTED liar', 'REJECTED array', 'ADDED after'] : ['ADDED after'];
    assert.deepEqual(got.map(eventText), want, 'the watch reports each and goes on');
    const listed = await b.list('Pod');
    assert.deepEqual(listed.items.map((p) => p.metadata.name).sort(), ['after', 'good']);
    assert.deepEqual(listed.rejected.map((r) => `${r.namespace}/${r.name}`).sort(), ['default/array', 'default/empty', 'default/garbage', 'default/liar']);
    assert.match(listed.rejected.find((r) => r.name === 'liar')?.reason ?? '', /metadata\.name is "someone-else"/);
    await assert.rejects(b.get('Pod', 'garbage', 'default'), (e: unknown) => isStoreError(e, 'Invalid') && /garbage/.test((e as Error).message));
    await assert.rejects(b.create(pod('garbage')), (e: unknown) => isStoreError(e, 'AlreadyExists'), 'present, even unusable, is taken');
    await assert.rejects(b.update({ ...pod('garbage'), metadata: { ...pod('garbage').metadata, resourceVersion: '1' } }), (e: unknown) => isStoreError(e, 'Conflict'));
    await b.update(pod('garbage')); // unconditional: replaces it
    assert.equal((await b.get('Pod', 'garbage', 'default'))?.metadata.name, 'garbage');
    assert.equal(await b.delete('Pod', 'empty', 'default'), true);
    assert.deepEqual((await b.list('Pod')).rejected.map((r) => r.name).sort(), ['array', 'liar']);
  }));

  it('refuses malformed objects with Invalid, naming the field', withStores(async ({ a }) => {
    await assert.rejects(a.create(pod('Bad_Name')), (e: unknown) => isStoreError(e, 'Invalid') && /metadata\.name/.test((e as Error).message));
    await assert.rejects(a.create({ ...pod('ok'), kind: 'bad kind' }), (e: unknown) => isStoreError(e, 'Invalid'));
  }));
}
