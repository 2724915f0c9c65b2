import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { admitted } from '../datastore/admitted-store.js';
import { FileStore } from '../datastore/file-store.js';
import type { WeftEndpointObject } from '../model/objects.js';
import { isDnsSubdomain } from '../util/dns-names.js';
import type { AttachmentRecord } from './attachment-store.js';
import { endpointName, syncEndpoints } from './endpoints.js';

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
      await assert.rejects(syncEndpoints(store, 'n1', records), /1 endpoint change\(s\) failed: create x\/bad/);
      const names = (await store.list<WeftEndpointObject>('WeftEndpoint')).items.map((e) => e.metadata.name).sort();
      assert.deepEqual(names, ['a', endpointName(records[2] as AttachmentRecord).name].sort());
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
