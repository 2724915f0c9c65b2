import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { admitted } from '../datastore/admitted-store.js';
import { FileStore } from '../datastore/file-store.js';
import type { PodObject, WeftEndpointObject } from '../model/objects.js';
import { isDnsSubdomain } from '../util/dns-names.js';
import type { AttachmentRecord } from './attachment-store.js';
import { endpointName, syncEndpoints, syncPodIPs, type PodIPs } from './endpoints.js';

const rec = (containerId: string, ifName: string, pod?: AttachmentRecord['pod'], addresses = ['10.244.1.5/32']): AttachmentRecord => ({
  containerId,
  ifName,
  network: 'n',
  netns: '/run/netns/x',
  hostIf: 'weft00000000000',
  state: 'ready',
  addresses: addresses.map((a) => a.split('/')[0] as string),
  createdAt: new Date(0).toISOString(),
  ...(pod ? { pod } : {}),
});

describe('endpoint records', () => {
  it('names are valid for any interface name: "net-", "Eth_1", long pod names', () => {
    const pod = { namespace: 'x', name: 'web' };
    assert.deepEqual(endpointName(rec('c', 'eth0', pod)), { name: 'web', namespace: 'x' });
    for (const ifName of ['net-', 'Eth_1', 'eth0.100', '-x-', 'a@b']) {
      const n = endpointName(rec('c', ifName, pod));
      assert.ok(isDnsSubdomain(n.name), `${ifName} → ${n.name}`);
      assert.equal(n.namespace, 'x');
    }
    assert.notEqual(endpointName(rec('c', 'eth_1', pod)).name, endpointName(rec('c', 'eth-1', pod)).name, 'no two interfaces share a name');
    const long = endpointName(rec('c', 'net1', { namespace: 'x', name: `${'a'.repeat(62)}.${'b'.repeat(62)}.${'c'.repeat(62)}.${'d'.repeat(60)}` }));
    assert.ok(isDnsSubdomain(long.name) && long.namespace === 'x', long.name);
  });

  it('one endpoint the store refuses does not stop the others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-ep-'));
    const store = admitted(FileStore.open(dir));
    try {
      const records = [rec('a', 'eth0', { namespace: 'x', name: 'a' }), rec('bad', 'eth0', { namespace: 'x', name: 'bad', labels: { 'not a key': 'v' } }, ['10.244.1.6/32']), rec('c', 'net-', { namespace: 'x', name: 'c' }, ['10.244.1.7/32'])];
      await assert.rejects(syncEndpoints(store, 'n1', records, []), /1 endpoint change\(s\) failed: create x\/bad/);
      const names = (await store.list<WeftEndpointObject>('WeftEndpoint')).items.map((e) => e.metadata.name).sort();
      assert.deepEqual(names, ['a', endpointName(records[2] as AttachmentRecord).name].sort());
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("each local pod's addresses on its Pod (weft.io/pod-ips): set once, changed, removed when detached, a gone Pod skipped", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-ep-'));
    const store = admitted(FileStore.open(dir));
    const podObj = (name: string): PodObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'x', annotations: { other: 'kept' } }, spec: { containers: [{ name: 'c' }] } });
    const ips = async (name: string): Promise<string | undefined> => (await store.get<PodObject>('Pod', name, 'x'))?.metadata.annotations?.['weft.io/pod-ips'];
    try {
      await store.create(podObj('a'));
      await store.create(podObj('b'));
      const written = new Map<string, PodIPs>();
      const a = rec('a', 'eth0', { namespace: 'x', name: 'a' }, ['10.244.1.5', 'fd00:10:244:1::5']);
      const b = rec('b', 'eth0', { namespace: 'x', name: 'b' }, ['10.244.1.6']);
      const gone = rec('g', 'eth0', { namespace: 'x', name: 'gone' }, ['10.244.1.7']);
      const second = rec('a', 'net1', { namespace: 'x', name: 'a' }, ['10.244.1.8']);
      assert.equal(await syncPodIPs(store, [a, b, gone, second], written), 2, 'a and b; no Pod "gone"; net1 is not the primary interface');
      assert.deepEqual([await ips('a'), await ips('b')], ['10.244.1.5,fd00:10:244:1::5', '10.244.1.6']);
      assert.equal((await store.get<PodObject>('Pod', 'a', 'x'))?.metadata.annotations?.['other'], 'kept');
      assert.equal(await syncPodIPs(store, [a, b, gone, second], written), 0, 'a steady state costs no write');
      assert.equal(await syncPodIPs(store, [a], written), 1, 'b detached: its annotation goes');
      assert.equal(await ips('b'), undefined);
      await store.delete('Pod', 'a', 'x');
      assert.equal(await syncPodIPs(store, [], written), 0, 'a deleted Pod needs nothing');
      assert.equal(written.size, 0);
      // A record of an older Pod "c" (its uid) and the Pod "c" there now is another one: untouched.
      await store.create({ ...podObj('c'), metadata: { ...podObj('c').metadata, uid: 'uid-new' } });
      const old = rec('old-c', 'eth0', { namespace: 'x', name: 'c', uid: 'uid-old' }, ['10.244.1.9']);
      assert.equal(await syncPodIPs(store, [old], written), 0);
      assert.equal(await ips('c'), undefined, 'the newer Pod of that name is not annotated with the old one\'s address');
      const cur = rec('new-c', 'eth0', { namespace: 'x', name: 'c', uid: 'uid-new' }, ['10.244.1.10']);
      assert.equal(await syncPodIPs(store, [cur], written), 1);
      assert.equal(await ips('c'), '10.244.1.10');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
