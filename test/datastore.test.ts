import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EtcdStore } from '../src/datastore/etcd-store.js';
import { FileStore } from '../src/datastore/file-store.js';
import { isStoreError, type WatchEvent } from '../src/datastore/store.js';
import type { KObject } from '../src/model/objects.js';
import { ROOT } from './helpers/env.js';
import { etcdMissing, startEtcd, stopEtcd } from './helpers/etcd.js';

/** The datastores under real concurrency and a real outage. */
describe('file datastore shared by several processes', () => {
  it('4 processes × 50 compare-and-swap increments of one object: no update lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-mp-'));
    try {
      const store = FileStore.open(dir);
      await store.create({ apiVersion: 'weft.io/v1', kind: 'Counter', metadata: { name: 'shared' }, spec: { value: 0, by: [] } });
      const worker = join(ROOT, 'build', 'test', 'helpers', 'store-worker.js');
      const runs = await Promise.all(
        Array.from({ length: 4 }, () =>
          new Promise<{ code: number | null; out: string }>((resolve) => {
            const p = spawn(process.execPath, [worker, dir, '50'], { stdio: ['ignore', 'pipe', 'inherit'] });
            let out = '';
            p.stdout.on('data', (d: Buffer) => (out += d.toString()));
            p.on('exit', (code) => resolve({ code, out }));
          }),
        ),
      );
      assert.deepEqual(runs.map((r) => r.code), [0, 0, 0, 0]);
      const c = await store.get<KObject & { spec: { value: number } }>('Counter', 'shared');
      assert.equal(c?.spec.value, 200);
      const conflicts = runs.reduce((n, r) => n + (JSON.parse(r.out) as { conflicts: number }).conflicts, 0);
      assert.ok(conflicts > 0, 'the processes really raced (some writes hit a Conflict and retried)');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('file datastore: a dead writer\'s lock and 4 processes breaking it at once', () => {
  it('exactly one breaks it at a time: 4 × 50 compare-and-swap increments, none lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-mpl-'));
    try {
      const store = FileStore.open(dir);
      await store.create({ apiVersion: 'weft.io/v1', kind: 'Counter', metadata: { name: 'shared' }, spec: { value: 0, by: [] } });
      // A lock left by a writer that died: a pid with another start time (as after a reuse).
      writeFileSync(join(dir, 'lock'), `${process.pid} 1 ${'0'.repeat(16)}\n`);
      const worker = join(ROOT, 'build', 'test', 'helpers', 'store-worker.js');
      const codes = await Promise.all(
        Array.from({ length: 4 }, () => new Promise<number | null>((resolve) => spawn(process.execPath, [worker, dir, '50'], { stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', resolve))),
      );
      assert.deepEqual(codes, [0, 0, 0, 0]);
      const c = await store.get<KObject & { spec: { value: number } }>('Counter', 'shared');
      assert.equal(c?.spec.value, 200);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('etcd watch across an etcd restart', { skip: etcdMissing() }, () => {
  it('a watch ends with Unavailable when etcd goes away; resumed from the last revision seen, no event is lost', async () => {
    let etcd = await startEtcd();
    const store = await EtcdStore.connect([etcd.endpoint]);
    const ac = new AbortController();
    try {
      const start = (await store.list('Pod')).revision;
      const got: WatchEvent[] = [];
      let endings = 0;
      const done = (async () => {
        let last = start;
        for (;;) {
          try {
            for await (const ev of store.watch('Pod', last, ac.signal)) {
              got.push(ev);
              last = ev.revision;
              if (got.length === 4) return;
            }
          } catch (err) {
            if (!isStoreError(err, 'Unavailable')) throw err;
            endings++; // the outage is reported, not hidden; resume from `last`
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      })();
      const pod = (name: string): KObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' } });
      await store.create(pod('before-1'));
      await store.create(pod('before-2'));
      const { dataDir, clientPort, peerPort } = etcd;
      await stopEtcd(etcd, false);
      await new Promise((r) => setTimeout(r, 1500));
      etcd = await startEtcd({ dataDir, clientPort, peerPort });
      await store.create(pod('after-1'));
      await store.create(pod('after-2'));
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${got.length} events`)), 60_000))]);
      assert.deepEqual(got.map((e) => (e.type === 'REJECTED' ? e.rejected.name : e.object.metadata.name)), ['before-1', 'before-2', 'after-1', 'after-2']);
      assert.ok(endings >= 1, 'the watch reported the outage');
    } finally {
      ac.abort();
      await store.close();
      await stopEtcd(etcd);
    }
  });
});

describe('nodes racing for blocks on a real etcd', { skip: etcdMissing() }, () => {
  it('20 nodes, each its own etcd client, all get distinct blocks', async () => {
    const { claimBlocks, ensureClusterNetwork, renewLease } = await import('../src/cluster/membership.js');
    const etcd = await startEtcd();
    const clients = await Promise.all(Array.from({ length: 20 }, () => EtcdStore.connect([etcd.endpoint])));
    try {
      const net = await ensureClusterNetwork(clients[0] as EtcdStore, {
        podCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'],
        blockSize: { ipv4: 24, ipv6: 64 },
        backend: { type: 'vxlan' },
        leaseDurationSeconds: 10,
      });
      await Promise.all(clients.map((c, i) => renewLease(c, `node-${i}`, 10)));
      const got = await Promise.all(clients.map((c, i) => claimBlocks(c, `node-${i}`, net)));
      assert.equal(new Set(got.map((g) => g[0])).size, 20);
      assert.equal(new Set(got.map((g) => g[1])).size, 20);
    } finally {
      for (const c of clients) await c.close();
      await stopEtcd(etcd);
    }
  });
});
