import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { parseResult } from '../src/cni/convert.js';
import type { NetworkConfigList } from '../src/cniruntime/conflist.js';
import { loadNetwork } from '../src/cniruntime/loader.js';
import type { CniRuntime, RuntimeConf } from '../src/cniruntime/runtime.js';
import { createPodNetns, SANDBOX_NODE_ADDRESS } from '../src/lab/sandbox.js';
import { PluginError } from '../src/cniruntime/invoke.js';
import { assertOk, baseEnv, config, run } from './helpers/cni.js';
import { ipJson, privilegedSkip } from './helpers/env.js';
import { nodeLeftovers, startTestNode, type TestNode } from './helpers/node.js';
import { startTcpServer, stopServer, tcpRequest } from './helpers/tcp.js';
import type { ChildProcess } from 'node:child_process';

/**
 * Weft first in a chain with Debian's reference portmap, bandwidth and tuning: our result is
 * their prevResult, they pass it through (tuning changes the MAC, bandwidth appends an ifb),
 * CHECK and DEL run through the whole chain. Plugins run in the node's netns, so portmap's
 * iptables rules land there, never in the machine's root netns.
 */
const skip = privilegedSkip() ?? (process.env['CI'] === undefined && !existsSync('/usr/lib/cni/portmap') ? 'Debian containernetworking-plugins is not installed' : undefined);

function existsSync(p: string): boolean {
  try {
    execFileSync('test', ['-e', p]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Debian's portmap 1.1.1 cannot CHECK while ip6tables is usable: checkPorts runs once per address
 * family and checks that family's rules in both iptables and ip6tables, so it fails on the
 * other table (a missing chain for IPv4-only pods, IPv4 rules in ip6tables for dual-stack ones).
 * An upstream bug, outside Weft: pinned here so a fixed package shows up as a test change.
 */
async function assertPortmapCheckBug(rt: CniRuntime, list: NetworkConfigList, conf: RuntimeConf): Promise<void> {
  await assert.rejects(rt.check(list, conf), (e: unknown) => e instanceof PluginError && e.plugin === 'portmap' && /could not check ipv6 dnat/.test(e.message));
}

/** The same network without portmap, to CHECK every other plugin against the cached result. */
function withoutPortmap(list: NetworkConfigList): NetworkConfigList {
  return { ...list, plugins: list.plugins.filter((p) => p.type !== 'portmap') };
}

function natRules(node: TestNode): string {
  return execFileSync('ip', ['netns', 'exec', node.sb.nodeNetns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' });
}

function qdiscs(node: TestNode, dev: string): string {
  return execFileSync('ip', ['netns', 'exec', node.sb.nodeNetns, 'tc', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' });
}

describe('chained after weft: reference portmap, bandwidth, tuning', { skip }, () => {
  let node: TestNode | undefined;
  let server: ChildProcess | undefined;
  afterEach(async () => {
    stopServer(server);
    server = undefined;
    await node?.stop();
    node = undefined;
  });
  after(() => stopServer(server));

  it('the conflist `weft install --chain portmap,bandwidth,tuning` writes: ports forward, rate limits apply, DEL cleans all', async () => {
    node = await startTestNode({ chain: ['portmap', 'bandwidth', 'tuning'] });
    assert.equal(node.list.cniVersion, '1.0.0', 'Debian reference plugins stop at 1.0.0, so the list must too');
    assert.deepEqual(node.list.plugins.map((p) => p.type), ['weft', 'portmap', 'bandwidth', 'tuning']);
    const caps = {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 10_000_000, ingressBurst: 1_000_000, egressRate: 20_000_000, egressBurst: 2_000_000 },
    };
    const { netns, result } = await node.addPod('web', { capabilityArgs: caps });
    const hostIf = result.interfaces?.find((i) => !i.sandbox && i.name.startsWith('weft'))?.name as string;
    assert.ok(hostIf);
    // bandwidth appended its ifb without disturbing weft's indices.
    const ifb = result.interfaces?.find((i) => i.name.startsWith('bwp'));
    assert.ok(ifb, 'bandwidth appended its ifb device');
    const podIdx = result.interfaces?.findIndex((i) => i.sandbox === netns && i.name === 'eth0');
    assert.ok(result.ips?.every((ip) => ip.interface === podIdx));
    assert.match(qdiscs(node, hostIf), /qdisc tbf/);
    assert.match(natRules(node), /--dport 8080 -j DNAT --to-destination 10\.244\.7\.\d+:80/);

    server = await startTcpServer(`${node.sb.prefix}-web`, 80, 'hello from web');
    assert.equal(tcpRequest(node.sb.nodeNetns, SANDBOX_NODE_ADDRESS, 8080), 'hello from web', 'node:8080 is forwarded to the pod');

    await assertPortmapCheckBug(node.rt, node.list, node.conf('web', { capabilityArgs: caps }));
    await node.rt.check(withoutPortmap(node.list), node.conf('web', { capabilityArgs: caps }));
    const prev = await node.rt.cachedResult(node.list, 'ctr-web', 'eth0');
    assertOk(await run(node, baseEnv(node, 'CHECK', 'ctr-web', 'eth0', netns), config(node, { prevResult: prev })));
    await node.rt.del(node.list, node.conf('web', { capabilityArgs: caps }));
    assert.doesNotMatch(natRules(node), /--to-destination 10\.244\.7/);
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
    assert.equal(ipJson(node.sb.nodeNetns, ['link', 'show']).some((l) => String(l['ifname']).startsWith('bwp')), false, 'the ifb is gone');
  });

  it('containerd-style Go-cased capability keys, and tuning changing the MAC after weft: CHECK passes, DEL restores', async () => {
    node = await startTestNode();
    const conflist = {
      cniVersion: '1.0.0',
      name: node.list.name,
      plugins: [
        { type: 'weft', socket: node.sb.socket, capabilities: { ips: true } },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
        { type: 'tuning', capabilities: { mac: true }, sysctl: { 'net.ipv4.conf.eth0.arp_ignore': '1' } /* Debian's tuning 1.1.1 substitutes IFNAME on ADD but not on CHECK */, dataDir: join(node.sb.dir, 'tuning') },
      ],
    };
    await fs.writeFile(join(node.sb.confDir, '10-weft.conflist'), JSON.stringify(conflist));
    const list = await loadNetwork(node.sb.confDir);
    const caps = {
      portMappings: [{ HostPort: 8081, ContainerPort: 81, Protocol: 'tcp', HostIP: '' }],
      bandwidth: { IngressRate: 10_000_000, IngressBurst: 4294967295, EgressRate: 10_000_000, EgressBurst: 4294967295 },
      mac: 'c2:11:22:33:44:55',
    };
    const netns = await createPodNetns(node.sb, 'api');
    const conf = node.conf('api', { capabilityArgs: caps, args: [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', 'prod'], ['K8S_POD_NAME', 'api']] });
    const raw = await node.rt.add(list, conf);
    const result = parseResult(raw, list.cniVersion);
    const pod = result.interfaces?.find((i) => i.sandbox === netns);
    assert.equal(pod?.mac, 'c2:11:22:33:44:55', "tuning's MAC is in the final result");
    assert.equal(ipJson(`${node.sb.prefix}-api`, ['link', 'show', 'eth0'])[0]?.['address'], 'c2:11:22:33:44:55');
    const sysctl = execFileSync('ip', ['netns', 'exec', `${node.sb.prefix}-api`, 'cat', '/proc/sys/net/ipv4/conf/eth0/arp_ignore'], { encoding: 'utf8' });
    assert.equal(sysctl.trim(), '1');
    assert.match(natRules(node), /--dport 8081 -j DNAT/);
    server = await startTcpServer(`${node.sb.prefix}-api`, 81, 'hello from api');
    assert.equal(tcpRequest(node.sb.nodeNetns, SANDBOX_NODE_ADDRESS, 8081), 'hello from api', 'IPv4 egress works after the MAC change');
    await assertPortmapCheckBug(node.rt, list, conf);
    await node.rt.check(withoutPortmap(list), conf);
    await node.rt.del(list, conf);
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
    assert.doesNotMatch(natRules(node), /--dport 8081 -j DNAT/);
  });

  it("the machine's root netns got none of it", () => {
    const rules = execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' });
    assert.doesNotMatch(rules, /10\.244\.7\./);
  });
});
