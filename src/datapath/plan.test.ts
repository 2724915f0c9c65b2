import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchLine, IpArgumentError } from '../kernel/ip.js';
import { buildResult, hostIfSysctls, hostSetupCommands, podSetupCommands, type AttachmentPlan } from './plan.js';

const plan: AttachmentPlan = {
  hostIf: 'weft0123456789a',
  ifName: 'eth0',
  netns: '/run/netns/p',
  mtu: 1450,
  hostMac: '02:00:00:00:00:01',
  podMac: '02:00:00:00:00:02',
  addresses: [
    { family: 4, address: '10.0.0.5', prefix: 32 },
    { family: 6, address: 'fd00::5', prefix: 128 },
  ],
};

describe('plan', () => {
  it('creates the pair with the peer directly in the pod netns, then host routes', () => {
    assert.deepEqual(hostSetupCommands(plan, '/proc/self/fd/3').map(batchLine), [
      'link add name weft0123456789a mtu 1450 address 02:00:00:00:00:01 type veth peer name eth0 mtu 1450 address 02:00:00:00:00:02 netns /proc/self/fd/3',
      'link set dev weft0123456789a up',
      'addr add 169.254.1.1/32 dev weft0123456789a scope host',
      'addr add fe80::1/64 dev weft0123456789a nodad',
      'route add 10.0.0.5/32 dev weft0123456789a scope link',
      'route add fd00::5/128 dev weft0123456789a',
    ]);
  });

  it('makes the node end an IPv6 host that ignores router advertisements and redirects', () => {
    assert.deepEqual(hostIfSysctls('weft0123456789a'), [
      ['net.ipv6.conf.weft0123456789a.accept_ra', '0'],
      ['net.ipv6.conf.weft0123456789a.accept_redirects', '0'],
      ['net.ipv6.conf.weft0123456789a.forwarding', '0'],
    ]);
  });

  it('adds the address before the onlink default route in the pod', () => {
    const cmds = podSetupCommands(plan).map(batchLine);
    const addr = cmds.indexOf('addr add 10.0.0.5/32 dev eth0');
    const route = cmds.indexOf('route append default via 169.254.1.1 dev eth0 onlink');
    assert.ok(addr >= 0 && route > addr);
    assert.ok(!cmds.some((c) => c.startsWith('neigh')), 'no static neighbours: a MAC change would flush them');
    assert.ok(cmds.includes('addr add fd00::5/128 dev eth0 nodad'));
  });

  it('an IPv4-only attachment has no IPv6 configuration', () => {
    const p = { ...plan, addresses: [plan.addresses[0] as AttachmentPlan['addresses'][number]] };
    assert.ok(![...hostSetupCommands(p, '/proc/self/fd/3'), ...podSetupCommands(p)].map(batchLine).some((c) => c.includes('fe80') || c.includes('fd00')));
  });

  it('a value can never become a second argument or command: a name with a space, newline or "#" is refused', () => {
    for (const ifName of ['eth0 up', 'eth0\naddr add 10.9.9.9/32 dev lo', 'eth0#x', "eth'0", '']) {
      assert.throws(() => podSetupCommands({ ...plan, ifName }).map(batchLine), IpArgumentError, JSON.stringify(ifName));
    }
    assert.throws(() => hostSetupCommands(plan, '/run/netns/a b').map(batchLine), IpArgumentError);
  });

  it('builds the result: [host veth, pod iface], ips pointing at the pod end, routes via the gateways', () => {
    const r = buildResult(plan, { cniVersion: '1.0.0', dns: { nameservers: ['10.96.0.10'] } });
    assert.deepEqual(r.interfaces, [
      { name: 'weft0123456789a', mac: '02:00:00:00:00:01', mtu: 1450 },
      { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1450, sandbox: '/run/netns/p' },
    ]);
    assert.deepEqual(r.ips, [
      { address: '10.0.0.5/32', gateway: '169.254.1.1', interface: 1 },
      { address: 'fd00::5/128', gateway: 'fe80::1', interface: 1 },
    ]);
    assert.deepEqual(r.routes, [
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
      { dst: '::/0', gw: 'fe80::1' },
    ]);
    assert.deepEqual(r.dns, { nameservers: ['10.96.0.10'] });
  });

  it('appends to a prevResult, keeping its indices valid', () => {
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: '/run/netns/p' }], ips: [{ address: '127.0.0.1/8', interface: 0 }] };
    const r = buildResult(plan, { cniVersion: '1.0.0', prevResult: prev });
    assert.equal(r.interfaces?.length, 3);
    assert.deepEqual(r.ips?.[0], { address: '127.0.0.1/8', interface: 0 });
    assert.equal(r.ips?.[1]?.interface, 2);
  });
});
