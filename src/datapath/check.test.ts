import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkNodeSide, checkPodSide, type CheckExpectation } from './check.js';
import type { ObservedNetns } from './observe.js';
import type { AttachmentPlan } from './plan.js';

const plan: AttachmentPlan = {
  hostIf: 'weft0123456789a',
  ifName: 'eth0',
  netns: '/run/netns/p',
  mtu: 1500,
  hostMac: '02:00:00:00:00:01',
  podMac: '02:00:00:00:00:02',
  addresses: [
    { family: 4, address: '10.0.0.5', prefix: 32 },
    { family: 6, address: 'fd00::5', prefix: 128 },
  ],
};
const exp: CheckExpectation = { plan, expectedMac: '02:00:00:00:00:02', expectedAddresses: ['10.0.0.5/32', 'fd00::5/128'] };

const node = (): ObservedNetns => ({
  links: [{ name: 'weft0123456789a', mac: '02:00:00:00:00:01', mtu: 1500, up: true, kind: 'veth' }],
  addresses: [
    { dev: 'weft0123456789a', address: '169.254.1.1', prefix: 32 },
    { dev: 'weft0123456789a', address: 'fe80::1', prefix: 64 },
  ],
  routes: [
    { dst: '10.0.0.5', nexthops: [{ gateway: undefined, dev: 'weft0123456789a' }] },
    { dst: 'fd00::5', nexthops: [{ gateway: undefined, dev: 'weft0123456789a' }] },
  ],
});
const pod = (): ObservedNetns => ({
  links: [{ name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1500, up: true, kind: 'veth' }],
  addresses: [
    { dev: 'eth0', address: '10.0.0.5', prefix: 32 },
    { dev: 'eth0', address: 'fd00::5', prefix: 128 },
  ],
  routes: [
    { dst: 'default', nexthops: [{ gateway: '169.254.1.1', dev: 'eth0' }] },
    { dst: 'default', nexthops: [{ gateway: 'fe80::1', dev: 'eth0' }, { gateway: 'fe80::1', dev: 'eth1' }] },
  ],
});

describe('check', () => {
  it('finds nothing wrong with an intact attachment (multipath IPv6 default included)', () => {
    assert.deepEqual(checkNodeSide(exp, node()), []);
    assert.deepEqual(checkPodSide(exp, pod()), []);
  });

  it('names a missing host route', () => {
    const n = node();
    n.routes.shift();
    assert.deepEqual(checkNodeSide(exp, n), ['on the node: route 10.0.0.5/32 dev weft0123456789a is missing']);
  });

  it('names a missing gateway address on the node end', () => {
    const n = node();
    n.addresses.shift();
    assert.deepEqual(checkNodeSide(exp, n), ['on the node: gateway address 169.254.1.1 is missing on weft0123456789a']);
  });

  it('names a missing host interface once, without a cascade', () => {
    const n = node();
    n.links = [];
    assert.deepEqual(checkNodeSide(exp, n), ['on the node: interface weft0123456789a (the pod\'s veth peer) is missing']);
  });

  it('names each pod-side problem', () => {
    const p = pod();
    (p.links[0] as { up: boolean; mac: string }).up = false;
    (p.links[0] as { up: boolean; mac: string }).mac = 'aa:bb:cc:dd:ee:ff';
    p.addresses.pop();
    p.routes.shift();
    assert.deepEqual(checkPodSide(exp, p), [
      'in netns /run/netns/p: interface eth0 is down',
      'in netns /run/netns/p: eth0 has MAC aa:bb:cc:dd:ee:ff, but the result says 02:00:00:00:00:02',
      'in netns /run/netns/p: address fd00::5/128 is missing on eth0',
      'in netns /run/netns/p: default route via 169.254.1.1 dev eth0 is missing',
    ]);
  });
});
