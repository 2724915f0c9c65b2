import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ipIn, privilegedSkip, ROOT } from './helpers/env.js';
import { DUAL_STACK, startTestNode, type TestNode } from './helpers/node.js';

/**
 * A pod is root in its own netns and may send anything over its link: nothing it sends may
 * configure the node. The node end of a veth is an IPv6 host, not a router, on that link (it
 * makes deleting the pair faster), so it must ignore Router Advertisements itself.
 */
const skip = privilegedSkip();
const PYTHON = '/usr/bin/python3';
const SEND_RA = join(ROOT, 'test', 'helpers', 'send-ra.py');
const PREFIX = '2001:db8:bad::';

function snmp6(node: TestNode, dev: string): Record<string, number> {
  const text = execFileSync('nsenter', [`--net=${node.sb.nodeNetnsPath}`, '--', 'cat', `/proc/net/dev_snmp6/${dev}`], { encoding: 'utf8' });
  return Object.fromEntries(text.trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([k, v]) => [k as string, Number(v)]));
}

function sysctlIn(node: TestNode, key: string): string {
  return execFileSync('nsenter', [`--net=${node.sb.nodeNetnsPath}`, '--', 'sysctl', '-n', key], { encoding: 'utf8' }).trim();
}

describe('a hostile pod cannot configure the node over its veth', { skip }, () => {
  const nodes: Partial<Record<'IPv4-only' | 'dual-stack' | 'small-mtu', TestNode>> = {};
  before(async () => {
    nodes['IPv4-only'] = await startTestNode({ podCidrs: ['10.244.7.0/24'] });
    nodes['dual-stack'] = await startTestNode({ podCidrs: DUAL_STACK });
    nodes['small-mtu'] = await startTestNode({ podCidrs: ['10.244.7.0/24'], agentArgs: ['--mtu', '1000'] });
  });
  after(async () => {
    for (const n of Object.values(nodes)) await n?.stop();
  });

  for (const kind of ['IPv4-only', 'dual-stack'] as const) {
    it(`${kind} node: a Router Advertisement from a pod arrives and changes nothing`, async () => {
      const node = nodes[kind] as TestNode;
      const { netns, result } = await node.addPod('ra');
      const hostIf = String(result.interfaces?.[0]?.name);
      for (const key of ['accept_ra', 'accept_redirects', 'forwarding']) assert.equal(sysctlIn(node, `net.ipv6.conf.${hostIf}.${key}`), '0', key);
      const before = { routes: ipIn(node.sb.nodeNetns, ['-6', 'route', 'show']), ras: snmp6(node, hostIf)['Icmp6InRouterAdvertisements'] ?? 0 };

      // The pod gives itself a usable link-local source (RAs must come from one) and advertises.
      ipIn(netns.replace('/run/netns/', ''), ['addr', 'add', 'fe80::bad/64', 'dev', 'eth0', 'nodad']);
      execFileSync('nsenter', [`--net=${netns}`, '--', PYTHON, SEND_RA, 'eth0', 'fe80::bad', PREFIX], { timeout: 10_000 });
      let received = 0;
      for (let i = 0; i < 50 && received < 3; i++) {
        received = (snmp6(node, hostIf)['Icmp6InRouterAdvertisements'] ?? 0) - before.ras;
        if (received < 3) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(received, 3, 'the node end received the advertisements (else this test proves nothing)');
      await new Promise((r) => setTimeout(r, 200));

      assert.equal(ipIn(node.sb.nodeNetns, ['-6', 'route', 'show']), before.routes, 'no default or prefix route learned from the pod');
      assert.doesNotMatch(ipIn(node.sb.nodeNetns, ['-6', 'addr', 'show']), /2001:db8:bad/, 'no address made from its prefix');
    });
  }

  it('an IPv4-only node with an MTU below IPv6\'s minimum: the link has no IPv6 at all, and ADD works', async () => {
    const node = nodes['small-mtu'] as TestNode;
    const { result } = await node.addPod('small');
    const hostIf = String(result.interfaces?.[0]?.name);
    assert.match(ipIn(node.sb.nodeNetns, ['link', 'show', 'dev', hostIf]), /mtu 1000 /);
    assert.equal(ipIn(node.sb.nodeNetns, ['-6', 'addr', 'show', 'dev', hostIf]).trim(), '', 'no IPv6 on the node end');
  });
});
