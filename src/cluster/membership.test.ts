import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileStore } from '../datastore/file-store.js';
import type { ClusterNetworkObject, IPBlockObject, LeaseObject } from '../model/objects.js';
import { nodeAddressOf } from '../ipam/pool.js';
import { candidateBlocks, validateBlockSize } from './blocks.js';
import { isAlive } from './liveness.js';
import { claimBlocks, claimBlocksReporting, encryptionMismatch, ensureClusterNetwork, leaveCluster, RECLAIMED_FROM, registerNode, removeGoneNode, renewLease, settingsDiffer, type ClusterDefaults } from './membership.js';
import { parseCidr } from '../ipam/cidr.js';

const defaults = (over: Partial<ClusterDefaults> = {}): ClusterDefaults => ({
  podCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'],
  blockSize: { ipv4: 24, ipv6: 64 },
  backend: { type: 'vxlan' },
  leaseDurationSeconds: 10,
  ...over,
});

async function withStore(fn: (open: () => FileStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-members-'));
  const stores: FileStore[] = [];
  try {
    await fn(() => {
      const s = FileStore.open(dir);
      stores.push(s);
      return s;
    });
  } finally {
    for (const s of stores) await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('blocks (pure)', () => {
  it('enumerates the cluster range in block-size steps', () => {
    const v4 = [...candidateBlocks(parseCidr('10.244.0.0/22'), 24)].map((c) => c.text);
    assert.deepEqual(v4, ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    const v6 = [...candidateBlocks(parseCidr('fd00:10:244::/62'), 64)].map((c) => c.text);
    assert.deepEqual(v6, ['fd00:10:244::/64', 'fd00:10:244:1::/64', 'fd00:10:244:2::/64', 'fd00:10:244:3::/64']);
    assert.equal(nodeAddressOf('10.244.3.0/24'), '10.244.3.1');
    assert.equal(nodeAddressOf('fd00:10:244:3::/64'), 'fd00:10:244:3::1');
  });

  it('refuses a block size that does not fit', () => {
    assert.throws(() => validateBlockSize(parseCidr('10.244.0.0/16'), 15), /use \/16 to \/30/);
    assert.throws(() => validateBlockSize(parseCidr('10.244.0.0/16'), 31), /use \/16 to \/30/);
  });
});

describe('liveness (pure)', () => {
  const lease = (renewMsAgo: number, now: number): LeaseObject => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'n' },
    spec: { renewTime: new Date(now - renewMsAgo).toISOString(), leaseDurationSeconds: 10 },
  });
  it('a lease is fresh for its duration; an observer that was not connected that long trusts everyone', () => {
    const now = 1_000_000_000_000;
    const view = { now, connectedSince: now - 60_000, leaseDurationSeconds: 10 };
    assert.equal(isAlive(lease(5_000, now), view), true);
    assert.equal(isAlive(lease(11_000, now), view), false);
    assert.equal(isAlive(undefined, view), false);
    assert.equal(isAlive(lease(60_000, now), { ...view, connectedSince: undefined }), true, 'disconnected: cannot judge');
    assert.equal(isAlive(lease(60_000, now), { ...view, connectedSince: now - 2_000 }), true, 'just reconnected: give renewals a lease duration');
  });
});

describe('membership on a shared store', () => {
  it('the first node writes the cluster network; later ones read it', async () => {
    await withStore(async (open) => {
      const a = await ensureClusterNetwork(open(), defaults());
      const b = await ensureClusterNetwork(open(), undefined);
      assert.deepEqual(b.spec, a.spec);
      await assert.rejects(
        (async () => {
          const dir = mkdtempSync(join(tmpdir(), 'weft-empty-'));
          try {
            await ensureClusterNetwork(FileStore.open(dir), undefined);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        })(),
        /--cluster-cidr/,
      );
    });
  });

  it('20 nodes racing for blocks (each its own store client) all get distinct blocks, per family', async () => {
    await withStore(async (open) => {
      const net = await ensureClusterNetwork(open(), defaults());
      const names = Array.from({ length: 20 }, (_, i) => `node-${i}`);
      await Promise.all(names.map((n) => renewLease(open(), n, 10)));
      const got = await Promise.all(names.map((n) => claimBlocks(open(), n, net)));
      const v4 = got.map((g) => g[0]);
      const v6 = got.map((g) => g[1]);
      assert.equal(new Set(v4).size, 20);
      assert.equal(new Set(v6).size, 20);
      const stored = (await open().list<IPBlockObject>('IPBlock')).items;
      assert.equal(stored.length, 40);
      for (const [i, n] of names.entries()) {
        assert.equal(stored.find((b) => b.spec.cidr === v4[i])?.spec.node, n);
      }
    });
  });

  it('a node keeps its blocks across restarts; a silent agent\'s node keeps them too; only a gone node\'s are taken over, and it says so', async () => {
    await withStore(async (open) => {
      const net = (await ensureClusterNetwork(open(), defaults({ podCIDRs: ['10.250.0.0/23'] }))) as ClusterNetworkObject;
      const now = Date.now();
      await renewLease(open(), 'a', 10, now);
      await renewLease(open(), 'b', 10, now);
      const [blockA] = await claimBlocks(open(), 'a', net, now);
      assert.deepEqual(await claimBlocks(open(), 'a', net, now), [blockA], 'same block after a restart');
      const [blockB] = await claimBlocks(open(), 'b', net, now);
      assert.notEqual(blockB, blockA);
      await registerNode(open(), { name: 'a', ips: ['198.18.0.11'], backend: 'vxlan' }, [blockA as string]);
      await registerNode(open(), { name: 'b', ips: ['198.18.0.12'], backend: 'vxlan' }, [blockB as string]);
      await renewLease(open(), 'c', 10, now);
      await assert.rejects(claimBlocks(open(), 'c', net, now), /no free \/24 block left/);
      // An hour later neither a nor b renewed: their agents are silent, but their Nodes exist.
      const later = now + 3600_000;
      await renewLease(open(), 'c', 10, later);
      await assert.rejects(claimBlocks(open(), 'c', net, later), /no free \/24 block left/, 'a crashed agent is not a dead node');
      // a is removed (its Node deleted, its lease expired): now its block may be taken, loudly.
      await open().delete('Node', 'a');
      const got = await claimBlocksReporting(open(), 'c', net, later);
      assert.deepEqual(got.blocks, [blockA]);
      assert.deepEqual(got.reclaimed, [{ cidr: blockA, from: 'a' }]);
      const stored = (await open().list<IPBlockObject>('IPBlock')).items.find((b) => b.spec.cidr === blockA);
      assert.match(stored?.metadata.annotations?.[RECLAIMED_FROM] ?? '', /^a at /);
      await registerNode(open(), { name: 'c', ips: ['198.18.0.13'], backend: 'vxlan' }, [blockA as string]);
      await leaveCluster(open(), 'c');
      assert.equal((await open().list<IPBlockObject>('IPBlock')).items.some((b) => b.spec.node === 'c'), false);
      assert.equal(await open().get('Node', 'c'), undefined);
    });
  });

  it('a gone node is removed only if its Lease and Node are still the versions judged', async () => {
    await withStore(async (open) => {
      const v1 = await registerNode(open(), { name: 'x', ips: ['198.18.0.20'], backend: 'vxlan' }, ['10.250.0.0/24']);
      const l1 = await renewLease(open(), 'x', 10);
      await renewLease(open(), 'x', 10); // the agent came back: it renews its lease (not its Node)
      assert.equal(await removeGoneNode(open(), v1, l1), false);
      assert.ok(await open().get('Node', 'x'));
      assert.ok(await open().get('Lease', 'x', 'weft-system'));
      const l2 = await open().get<LeaseObject>('Lease', 'x', 'weft-system');
      assert.equal(await removeGoneNode(open(), v1, l2), true);
      assert.equal(await open().get('Node', 'x'), undefined);
      assert.equal(await open().get('Lease', 'x', 'weft-system'), undefined);
    });
  });
});

describe('an agent whose settings are not the cluster\'s (pure)', () => {
  it('names each difference; the same settings in another order are no difference', () => {
    const spec = { ...defaults(), leaseDurationSeconds: 40 };
    assert.deepEqual(settingsDiffer(defaults({ podCIDRs: ['fd00:10:244::/56', '10.244.0.0/16'] }), spec), []);
    assert.deepEqual(settingsDiffer(defaults({ backend: { type: 'host-gw' }, ipam: 'kubernetes' }), spec), [
      'ipam: kubernetes here, cluster-pool in the cluster',
      'backend: host-gw here, vxlan in the cluster',
    ]);
    // An API server hands back a custom resource's keys in its own order: no difference.
    const vx = { type: 'vxlan' as const, vni: 1, port: 8472 };
    assert.deepEqual(settingsDiffer(defaults({ backend: vx }), { ...spec, backend: { port: 8472, type: 'vxlan', vni: 1 } }), []);
    assert.deepEqual(settingsDiffer(defaults({ backend: vx }), { ...spec, backend: { ...vx, port: 4789 } }), ['VXLAN port: 8472 here, 4789 in the cluster']);
  });
});

describe('encryption is fixed with the cluster (pure)', () => {
  const spec = (encryption?: { type: 'wireguard'; port: number }): ClusterNetworkObject['spec'] => ({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40, ...(encryption ? { encryption } : {}) });
  it('an agent told nothing follows the cluster; one told otherwise is refused, saying what to do', () => {
    assert.equal(encryptionMismatch(undefined, spec({ type: 'wireguard', port: 51820 })), undefined);
    assert.equal(encryptionMismatch('wireguard', spec({ type: 'wireguard', port: 51820 })), undefined);
    assert.equal(encryptionMismatch('none', spec()), undefined);
    assert.match(encryptionMismatch('wireguard', spec()) ?? '', /--encryption wireguard, but the cluster was created with encryption none: .* not turned on on a running cluster.*Start this agent with --encryption none/);
    assert.match(encryptionMismatch('none', spec({ type: 'wireguard', port: 51820 })) ?? '', /not turned off on a running cluster/);
  });
});
