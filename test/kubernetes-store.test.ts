import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { kubeconfigConnection } from '../src/datastore/kube-connection.js';
import { KubernetesStore } from '../src/datastore/kubernetes-store.js';
import { runStoreContract } from '../src/datastore/store.contract.js';
import { isStoreError, type WatchEvent } from '../src/datastore/store.js';
import type { KObject } from '../src/model/objects.js';
import { KubeApiStandin } from './helpers/kube-apiserver-standin.js';

/**
 * The Store contract on the Kubernetes API — the stand-in of test/helpers (no kube-apiserver
 * can be installed here), over TLS with a bearer token, reached through a kubeconfig as an
 * operator would give it. A fresh stand-in per case is a fresh, empty store.
 */
describe('KubernetesStore (contract, Kubernetes API stand-in)', () => {
  const servers = new Map<object, { standin: KubeApiStandin; dir: string }>();
  runStoreContract({
    async open() {
      const standin = await KubeApiStandin.start();
      const dir = mkdtempSync(join(tmpdir(), 'weft-kstore-'));
      const conn = kubeconfigConnection(standin.writeKubeconfig(dir));
      const a = new KubernetesStore(conn);
      const b = new KubernetesStore(conn);
      servers.set(a, { standin, dir });
      return {
        a,
        b,
        cleanup: async () => {
          await a.close();
          await b.close();
          await standin.stop();
          rmSync(dir, { recursive: true, force: true });
          servers.delete(a);
        },
      };
    },
    async compact({ a }, revision) {
      servers.get(a)?.standin.compact(revision);
    },
    noRawWrites: 'the Kubernetes API serves only objects it decoded and validated: what reaches Weft past every check is a well-formed object with hostile content, which the admitting store handles (test/hostile-datastore.test.ts)',
    rawWritesAreEvents: false,
  });
});

/**
 * What the agents' informers rely on when the API misbehaves: a watch survives dropped
 * connections, a server ending its streams and 429/500 answers by resuming from the last
 * revision it saw (an event or a bookmark) — no event lost or repeated, and no list request.
 */
describe('KubernetesStore watches ride out faults (stand-in)', () => {
  let standin: KubeApiStandin | undefined;
  let store: KubernetesStore | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'weft-kfault-'));
  after(async () => {
    await store?.close();
    await standin?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const pod = (name: string): KObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'x' }] } }) as KObject;
  const until = async (what: string, ok: () => boolean, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('dropped connections, 429 and 500 while resuming, bookmarks: every event once, in order, never a relist', async () => {
    standin = await KubeApiStandin.start();
    standin.bookmarkIntervalMs = 200;
    store = new KubernetesStore(kubeconfigConnection(standin.writeKubeconfig(dir)));
    const s = store;
    const start = (await s.list('Pod')).revision;
    const ac = new AbortController();
    const seen: WatchEvent[] = [];
    const reading = (async () => {
      for await (const ev of s.watch('Pod', start, ac.signal)) seen.push(ev);
    })();
    const lists = (): number => (standin as KubeApiStandin).requests.filter((r) => r.method === 'GET' && !r.watch && r.path.endsWith('/pods')).length;
    const listsBefore = lists();

    await s.create(pod('p1'));
    await until('p1', () => seen.length === 1);
    standin.dropWatches();
    await s.create(pod('p2'));
    await until('p2 after a dropped connection', () => seen.length === 2);
    // A write of another kind moves the global revision; a bookmark carries it to this watch,
    // and the next reconnect starts from there rather than from p2's revision.
    await s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'elsewhere' } });
    const bookmarked = standin.revision();
    await new Promise((r) => setTimeout(r, 600));
    const met = (status: number): number => (standin as KubeApiStandin).requests.filter((r) => r.watch && r.status === status).length;
    standin.failNext(2, 429);
    standin.dropWatches();
    await until('two 429 answers met by the resuming watch', () => met(429) >= 2);
    const accepted = met(200);
    await until('the watch accepted again', () => met(200) > accepted);
    standin.failNext(1, 500);
    standin.dropWatches();
    await until('a 500 answer met by the resuming watch', () => met(500) >= 1);
    await s.create(pod('p3'));
    await until('p3 after 429, 429, 500', () => seen.length === 3);
    ac.abort();
    await reading;

    assert.deepEqual(seen.map((e) => (e.type === 'REJECTED' ? 'REJECTED' : `${e.type} ${e.object.metadata.name}`)), ['ADDED p1', 'ADDED p2', 'ADDED p3']);
    assert.equal(lists(), listsBefore, 'no list: every reconnect resumed the watch');
    const watches = standin.requests.filter((r) => r.watch && r.status === 200).map((r) => new URLSearchParams(r.query).get('resourceVersion'));
    assert.ok(watches.includes(String(bookmarked)), `a watch resumed from the bookmark's revision ${bookmarked} (${watches.join(', ')})`);
  });

  it('a watch that keeps failing gives up with Unavailable, so the informer backs off and reports the datastore gone', async () => {
    const s = store as KubernetesStore;
    const from = (await s.list('Pod')).revision;
    (standin as KubeApiStandin).failNext(10, 503);
    const ac = new AbortController();
    await assert.rejects(
      (async () => {
        for await (const ev of s.watch('Pod', from, ac.signal)) void ev;
      })(),
      (e: unknown) => isStoreError(e, 'Unavailable'),
    );
    ac.abort();
  });
});
