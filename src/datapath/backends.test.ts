import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSilence, longDead, silentAgents } from '../cluster/liveness.js';
import { peersFrom } from '../cluster/peers.js';
import type { LeaseObject, NodeObject } from '../model/objects.js';
import { hostGwCommands, hostGwDesired } from './host-gw.js';
import { batchLine } from '../kernel/ip.js';
import { fullScript } from '../nftables/ruleset.js';
import { masqueradeTable } from './masquerade.js';
import { vtepMac, vxlanCommands, vxlanDesired, type VxlanState } from './vxlan.js';

const now = Date.parse('2026-11-28T00:00:00Z');
const node = (name: string, blocks: string[], ips: string, mac?: string): NodeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, annotations: { 'weft.io/node-ips': ips, ...(mac ? { 'weft.io/vxlan-mac': mac } : {}), 'weft.io/backend': 'vxlan' } },
  spec: { podCIDRs: blocks },
});
const lease = (name: string, agoMs: number): LeaseObject => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name, namespace: 'weft-system' },
  spec: { renewTime: new Date(now - agoMs).toISOString(), leaseDurationSeconds: 10 },
});

describe('peers (pure)', () => {
  it('every other node with blocks, its agent alive or not, underlay addresses IPv4 first', () => {
    const nodes = [
      node('me', ['10.244.0.0/24'], '198.18.0.10'),
      node('b', ['10.244.1.0/24', 'fd00::/64'], 'fd18::11,198.18.0.11', '02:00:00:00:00:0b'),
      node('silent', ['10.244.2.0/24'], '198.18.0.12'),
      node('new', [], '198.18.0.13'),
    ];
    const { peers, problems } = peersFrom(nodes, 'me');
    assert.deepEqual(problems, []);
    assert.deepEqual(peers[0], { name: 'b', ips: ['198.18.0.11', 'fd18::11'], blocks: ['10.244.1.0/24', 'fd00::/64'], vxlanMac: '02:00:00:00:00:0b', backend: 'vxlan' });
    assert.deepEqual(peers.map((p) => p.name), ['b', 'silent'], 'a node whose agent stopped renewing keeps its routes');
  });

  it('where blocks are leased, a Node counts only for the blocks it holds; the rest is reported', () => {
    const nodes = [node('b', ['10.244.1.0/24'], '198.18.0.11', '02:00:00:00:00:0b'), node('forger', ['10.244.1.0/24', '10.244.9.0/24'], '198.18.0.66', '02:00:00:00:00:66')];
    const { peers, problems } = peersFrom(nodes, 'me', new Map([['10.244.1.0/24', 'b']]));
    assert.deepEqual(peers.map((p) => `${p.name} ${p.blocks.join(',')}`), ['b 10.244.1.0/24']);
    assert.deepEqual(problems, [
      'node forger lists pod block 10.244.1.0/24, which node b holds: not routed to forger',
      'node forger lists pod block 10.244.9.0/24, which no IPBlock gives it: not routed to forger',
    ]);
  });
});

describe('peers (pure): WireGuard keys and endpoints', () => {
  const wgKey = Buffer.alloc(32, 9).toString('base64');
  const withWg = (name: string, ip: string, ann: Record<string, string>): NodeObject => {
    const n = node(name, ['10.244.1.0/24'], ip);
    n.metadata.annotations = { ...n.metadata.annotations, ...ann };
    return n;
  };
  it('a node\'s key and endpoint, where the endpoint is one of its checked addresses; else left out and said why', () => {
    const ok = peersFrom([withWg('b', '198.18.0.11', { 'weft.io/wireguard-public-key': wgKey, 'weft.io/wireguard-endpoint': '198.18.0.11:51820' })], 'me');
    assert.deepEqual([ok.peers[0]?.wireguard, ok.problems], [{ publicKey: wgKey, endpoint: '198.18.0.11:51820' }, []]);
    const elsewhere = peersFrom([withWg('b', '198.18.0.11', { 'weft.io/wireguard-public-key': wgKey, 'weft.io/wireguard-endpoint': '203.0.113.9:51820' })], 'me');
    assert.equal(elsewhere.peers[0]?.wireguard, undefined);
    assert.match(elsewhere.problems[0] ?? '', /node b gives WireGuard endpoint 203\.0\.113\.9:51820, which is not one of its addresses/);
    const noKey = peersFrom([withWg('b', '198.18.0.11', { 'weft.io/wireguard-endpoint': '198.18.0.11:51820' })], 'me');
    assert.match(noKey.problems[0] ?? '', /no usable WireGuard public key/);
    assert.deepEqual(peersFrom([node('b', ['10.244.1.0/24'], '198.18.0.11')], 'me').problems, [], 'a node of an unencrypted cluster publishes neither');
  });

  it('without IPBlocks (ipam kubernetes), a block a node annotates counts only where its spec.podCIDRs has it', () => {
    const thief = node('thief', ['10.244.7.0/24'], '198.18.0.66');
    thief.metadata.annotations = { ...thief.metadata.annotations, 'weft.io/pod-cidrs': '10.244.1.0/24,10.244.7.0/24' };
    const { peers, problems } = peersFrom([thief], 'me');
    assert.deepEqual(peers.map((p) => p.blocks), [['10.244.7.0/24']]);
    assert.match(problems[0] ?? '', /node thief lists pod block 10\.244\.1\.0\/24, which its Node's spec\.podCIDRs .* does not hold/);
    const v6 = node('v6', ['fd00:10:244:0::/64'], '198.18.0.67');
    v6.metadata.annotations = { ...v6.metadata.annotations, 'weft.io/pod-cidrs': 'fd00:10:244::/64' };
    assert.deepEqual(peersFrom([v6], 'me').peers.map((p) => p.blocks), [['fd00:10:244::/64']], 'one block in two spellings');
  });
});

describe('peers (pure): what a Node or IPBlock written past every check cannot do', () => {
  const shape = { podCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'], blockSize: { ipv4: 24, ipv6: 64 }, ownIps: ['198.18.0.10'] };
  it('a block outside the pod ranges or of another size is not routed, even where an IPBlock gives it; nor a bad underlay address', () => {
    const forger = node('forger', ['0.0.0.0/0', '198.18.0.0/32', '10.244.9.0/25', '10.244.8.0/24'], '198.18.0.66,fd00:198:18::66', '02:00:00:00:00:66');
    const holders = new Map(['0.0.0.0/0', '198.18.0.0/32', '10.244.9.0/25', '10.244.8.0/24'].map((b) => [b, 'forger']));
    const { peers, problems } = peersFrom([forger], 'me', holders, shape);
    assert.deepEqual(peers.map((p) => `${p.name} ${p.blocks.join(',')}`), ['forger 10.244.8.0/24']);
    assert.equal(problems.length, 3);
    assert.match(problems[0] ?? '', /0\.0\.0\.0\/0, which is not a \/24 block of the cluster/);
    for (const [ips, why] of [['127.0.0.1', /not a unicast address/], ['198.18.0.10', /this node's own address/], ['10.244.3.1', /inside the cluster's pod ranges/], ['fe80::1', /not a unicast address/], ['::ffff:127.0.0.1', /not a unicast address/]] as const) {
      const r = peersFrom([node('n', ['10.244.8.0/24'], ips)], 'me', new Map([['10.244.8.0/24', 'n']]), shape);
      assert.deepEqual(r.peers[0]?.ips, [], ips);
      assert.match(r.problems[0] ?? '', why);
    }
  });
});

describe('liveness (pure): reported, and only a silence beyond the grace counts as gone', () => {
  const view = { now, connectedSince: now - 600_000, leaseDurationSeconds: 10 };
  const nodes = [node('me', [], '198.18.0.10'), node('b', [], '198.18.0.11'), node('quiet', [], '198.18.0.12'), node('ancient', [], '198.18.0.13')];
  const leases = new Map([['b', lease('b', 1000)], ['quiet', lease('quiet', 130_000)], ['ancient', lease('ancient', 25 * 3600_000)]]);
  it('silent agents, with how long', () => {
    const silent = silentAgents(nodes, leases, 'me', view);
    assert.deepEqual(silent.map((s) => `${s.node} ${formatSilence(s.silentSeconds ?? -1)}`), ['ancient 1d 1h', 'quiet 2m']);
    assert.deepEqual(silentAgents(nodes, leases, 'me', { ...view, connectedSince: now - 2000 }), [], 'just reconnected: cannot judge yet');
    assert.deepEqual(longDead(silent, leases, view, 24 * 3600), ['ancient']);
    assert.deepEqual(longDead(silent, leases, view, 0), [], 'a grace of 0 never removes a node');
  });
});

describe('vxlan (pure)', () => {
  const peers = [{ name: 'b', ips: ['198.18.0.11'], blocks: ['10.244.1.0/24', 'fd00:10:244:1::/64'], vxlanMac: '02:00:00:00:00:0b', backend: 'vxlan' }];
  it('FDB to the VTEP, neighbours for the block node addresses, onlink routes via them', () => {
    const { state, problems } = vxlanDesired(peers);
    assert.deepEqual(problems, []);
    assert.deepEqual([...state.fdb], [['02:00:00:00:00:0b', '198.18.0.11']]);
    assert.deepEqual([...state.neigh], [['10.244.1.1', '02:00:00:00:00:0b'], ['fd00:10:244:1::1', '02:00:00:00:00:0b']]);
    assert.deepEqual([...state.routes], [['10.244.1.0/24', '10.244.1.1'], ['fd00:10:244:1::/64', 'fd00:10:244:1::1']]);
  });

  it('a converged state needs no command; stale entries are removed, routes before the neighbours they use', () => {
    const { state } = vxlanDesired(peers);
    const none = vxlanCommands(state, state);
    assert.deepEqual(none, { bridge: [], ipAdd: [], ipDel: [], bridgeDel: [] });
    const have: VxlanState = {
      fdb: new Map([['02:00:00:00:00:0c', '198.18.0.12']]),
      neigh: new Map([['10.244.2.1', '02:00:00:00:00:0c']]),
      routes: new Map([['10.244.2.0/24', '10.244.2.1']]),
    };
    const c = vxlanCommands(state, have);
    assert.deepEqual(c.ipDel.map(batchLine), ['route del 10.244.2.0/24 dev weft.vxlan proto 77', 'neigh del 10.244.2.1 dev weft.vxlan']);
    assert.deepEqual(c.bridgeDel.map(batchLine), ['fdb del 02:00:00:00:00:0c dev weft.vxlan dst 198.18.0.12 self']);
    assert.equal(c.ipAdd.length, 4);
  });

  it('a peer without a VXLAN MAC is reported, not routed; VTEP MACs are stable and unicast', () => {
    const { state, problems } = vxlanDesired([{ ...peers[0], vxlanMac: undefined } as never]);
    assert.equal(state.routes.size, 0);
    assert.match(problems[0] ?? '', /publishes no VXLAN MAC/);
    assert.equal(vtepMac('n1'), vtepMac('n1'));
    assert.notEqual(vtepMac('n1'), vtepMac('n2'));
    assert.equal(parseInt(vtepMac('n1').slice(0, 2), 16) & 3, 2);
  });
});

describe('host-gw (pure)', () => {
  const peers = [
    { name: 'b', ips: ['198.18.0.11', 'fd18::11'], blocks: ['10.244.1.0/24', 'fd00:10:244:1::/64'], vxlanMac: undefined, backend: 'host-gw' },
    { name: 'far', ips: ['10.9.0.5'], blocks: ['10.244.2.0/24', 'fd00:10:244:2::/64'], vxlanMac: undefined, backend: 'host-gw' },
  ];
  it('a route per block via the peer address of its family; a peer behind a router is refused, naming it', () => {
    const { state, problems } = hostGwDesired(peers, (a) => (a === '10.9.0.5' ? '198.18.0.1' : undefined));
    assert.deepEqual([...state.routes], [['10.244.1.0/24', '198.18.0.11'], ['fd00:10:244:1::/64', 'fd18::11']]);
    assert.deepEqual(problems, [
      'host-gw needs every node on one L2 segment: node far (10.9.0.5) is reached via router 198.18.0.1; use the vxlan backend',
      'host-gw: node far has no IPv6 underlay address, so its block fd00:10:244:2::/64 is unreachable',
    ]);
    assert.deepEqual(hostGwCommands(state, { routes: new Map([['10.244.7.0/24', '198.18.0.17']]) }).map(batchLine), [
      'route replace 10.244.1.0/24 via 198.18.0.11 proto 77',
      'route replace fd00:10:244:1::/64 via fd18::11 proto 77',
      'route del 10.244.7.0/24 proto 77',
    ]);
  });
});

describe('masquerade (pure)', () => {
  it('masquerades leaving the cluster range, never inside it, per family, as one replacing transaction', () => {
    const s = fullScript(masqueradeTable(['10.244.0.0/16', 'fd00:10:244::/56']));
    assert.match(s, /^add table inet weft_masq\ndelete table inet weft_masq\nadd table inet weft_masq\nadd chain inet weft_masq postrouting \{ type nat hook postrouting/);
    assert.match(s, /ip saddr 10\.244\.0\.0\/16 ip daddr != 10\.244\.0\.0\/16 masquerade/);
    assert.match(s, /ip6 saddr fd00:10:244::\/56 ip6 daddr != fd00:10:244::\/56 masquerade/);
  });
});
