import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createPodNetns, deletePodNetns } from '../src/lab/sandbox.js';
import { assertCniError, assertOk, baseEnv, config, reservationCount, run } from './helpers/cni.js';
import { ipIn, ipJson, ping, privilegedSkip } from './helpers/env.js';
import { nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from './helpers/node.js';

/** ADD, DEL, CHECK, GC and STATUS against the real kernel, through the real binary. */
const skip = privilegedSkip();

function hostIfOf(result: Record<string, unknown>): string {
  const ifs = result['interfaces'] as Array<{ name: string; sandbox?: string }>;
  const host = ifs.find((i) => !i.sandbox);
  assert.ok(host, 'the result lists the host-side veth');
  return host.name;
}

describe('CNI conformance (real binary, real kernel)', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  /** ADD through the binary directly; returns env, config and the parsed result. */
  async function add(id: string, ifName = 'eth0', confExtra: Record<string, unknown> = {}, envExtra: Record<string, string> = {}) {
    const ns = `${node.sb.prefix}-${id}`;
    if (!node.sb.pods.has(ns)) await createPodNetns(node.sb, id);
    const env = { ...baseEnv(node, 'ADD', id, ifName), ...envExtra };
    const conf = config(node, confExtra);
    const r = await run(node, env, conf);
    assertOk(r);
    return { env, conf, result: r.json as Record<string, unknown>, ns };
  }
  const withPrev = (conf: string, result: unknown): string => JSON.stringify({ ...(JSON.parse(conf) as object), prevResult: result });

  it('ADD: the result matches the spec and the kernel; pods reach each other and the node reaches them (v4 and v6)', async () => {
    const a = await add('c1');
    const b = await add('c2');
    for (const x of [a, b]) {
      const ifs = x.result['interfaces'] as Array<{ name: string; mac: string; sandbox?: string }>;
      const pods = ifs.filter((i) => i.sandbox === `/run/netns/${x.ns}` && i.name === 'eth0');
      assert.equal(pods.length, 1, 'exactly one container interface');
      const idx = ifs.indexOf(pods[0] as (typeof ifs)[number]);
      const ips = x.result['ips'] as Array<{ address: string; gateway: string; interface: number }>;
      assert.equal(ips.length, 2);
      for (const ip of ips) {
        assert.equal(ip.interface, idx);
        assert.equal(ip.gateway.includes(':'), ip.address.includes(':'), 'gateway of the same family');
      }
      // Kernel: the interface with the listed MAC and addresses, up, the host veth present.
      const link = ipJson(x.ns, ['link', 'show', 'eth0'])[0] as Record<string, unknown>;
      assert.equal(link['address'], pods[0]?.mac);
      assert.ok((link['flags'] as string[]).includes('UP'));
      const addrs = (ipJson(x.ns, ['addr', 'show', 'eth0'])[0]?.['addr_info'] as Array<{ local: string; prefixlen: number }>).map((i) => `${i.local}/${i.prefixlen}`);
      for (const ip of ips) assert.ok(addrs.includes(ip.address), `${ip.address} on eth0`);
      assert.match(ipIn(x.ns, ['route', 'show', 'default']), /default via 169\.254\.1\.1 dev eth0/);
      assert.match(ipIn(x.ns, ['-6', 'route', 'show', 'default']), /default via fe80::1 dev eth0/);
      assert.equal(ipJson(node.sb.nodeNetns, ['link', 'show', hostIfOf(x.result)]).length, 1);
    }
    const addrB = (b.result['ips'] as Array<{ address: string }>).map((i) => i.address.split('/')[0] as string);
    for (const ip of addrB) {
      assert.ok(ping(a.ns, ip), `pod c1 -> ${ip}`);
      assert.ok(ping(node.sb.nodeNetns, ip), `node -> ${ip}`);
    }
  });

  it('ADD is idempotent: the same (container, ifname) again returns the same addresses and reserves nothing new', async () => {
    const first = await add('idem');
    const before = await reservationCount(node);
    const again = await run(node, first.env, first.conf);
    assertOk(again);
    assert.deepEqual(again.json?.['ips'], first.result['ips']);
    assert.deepEqual(again.json?.['interfaces'], first.result['interfaces']);
    assert.equal(await reservationCount(node), before);
  });

  it('ADD again after the pod side was damaged rebuilds it with the same addresses', async () => {
    const first = await add('rebuild');
    ipIn(first.ns, ['route', 'del', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    const again = await run(node, first.env, first.conf);
    assertOk(again);
    assert.deepEqual(again.json?.['ips'], first.result['ips']);
    assert.match(ipIn(first.ns, ['route', 'show', 'default']), /via 169\.254\.1\.1/);
  });

  it('a second interface of one container gets other addresses, and DEL of eth1 leaves eth0 intact', async () => {
    const e0 = await add('two');
    const e1 = await add('two', 'eth1');
    assert.notDeepEqual(e1.result['ips'], e0.result['ips']);
    assertOk(await run(node, { ...e1.env, CNI_COMMAND: 'DEL' }, e1.conf));
    assert.throws(() => ipIn(e0.ns, ['link', 'show', 'eth1']), 'eth1 is gone');
    assertOk(await run(node, { ...e0.env, CNI_COMMAND: 'CHECK' }, withPrev(e0.conf, e0.result)));
  });

  it('DEL removes everything; DEL again, with an empty netns, a vanished netns, or never added all succeed', async () => {
    const x = await add('del1');
    const host = hostIfOf(x.result);
    const del = { ...x.env, CNI_COMMAND: 'DEL' };
    const r = await run(node, del, withPrev(x.conf, x.result));
    assertOk(r);
    assert.equal(r.stdout, '');
    assert.equal(ipJson(node.sb.nodeNetns, ['link', 'show', 'type', 'veth']).some((l) => l['ifname'] === host), false);
    assert.throws(() => ipIn(x.ns, ['link', 'show', 'eth0']));
    assertOk(await run(node, del, x.conf));

    const y = await add('del2');
    assertOk(await run(node, { ...y.env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, y.conf));
    const z = await add('del3');
    await deletePodNetns(node.sb, 'del3');
    assertOk(await run(node, { ...z.env, CNI_COMMAND: 'DEL' }, z.conf));
    assertOk(await run(node, { ...baseEnv(node, 'DEL', 'never-added', 'eth9'), CNI_NETNS: '' }, config(node)));
    const left = await stateLeftovers(node);
    for (const id of ['del1', 'del2', 'del3']) assert.ok(!left.records.some((r) => r.startsWith(`${id}@`)), `record of ${id} gone`);
    assert.ok(!nodeLeftovers(node).links.includes(hostIfOf(z.result)));
  });

  it('ADD into a netns that already has the interface fails with 103 and leaves no reservation; DEL then succeeds', async () => {
    const netns = await createPodNetns(node.sb, 'taken');
    ipIn(`${node.sb.prefix}-taken`, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const before = await reservationCount(node);
    const env = baseEnv(node, 'ADD', 'taken', 'eth0', netns);
    assertCniError(await run(node, env, config(node)), 103, /interface eth0 already exists in netns/);
    assert.equal(await reservationCount(node), before);
    assertOk(await run(node, { ...env, CNI_COMMAND: 'DEL' }, config(node)));
    assert.equal(ipJson(`${node.sb.prefix}-taken`, ['link', 'show', 'eth0']).length, 1, "DEL does not delete an interface that is not weft's");
  });

  it('requested addresses: the ips capability, args.cni.ips and CNI_ARGS IP are honoured; outside or taken fail with 102', async () => {
    const cap = await add('static1', 'eth0', { runtimeConfig: { ips: ['10.244.7.200/24', 'fd00:244:7::c8'] } });
    assert.deepEqual((cap.result['ips'] as Array<{ address: string }>).map((i) => i.address), ['10.244.7.200/32', 'fd00:244:7::c8/128']);
    const viaArgs = await add('static2', 'eth0', { args: { cni: { ips: ['10.244.7.201'] } } });
    assert.equal((viaArgs.result['ips'] as Array<{ address: string }>)[0]?.address, '10.244.7.201/32');
    const viaEnv = await add('static3', 'eth0', {}, { CNI_ARGS: 'IP=10.244.7.202' });
    assert.equal((viaEnv.result['ips'] as Array<{ address: string }>)[0]?.address, '10.244.7.202/32');
    const before = await reservationCount(node);
    await createPodNetns(node.sb, 'static4');
    const env = baseEnv(node, 'ADD', 'static4');
    assertCniError(await run(node, env, config(node, { runtimeConfig: { ips: ['10.9.9.9'] } })), 102, /outside the pod range 10\.244\.7\.0\/24/);
    assertCniError(await run(node, env, config(node, { runtimeConfig: { ips: ['10.244.7.200'] } })), 102, /already in use by container static1/);
    assertCniError(await run(node, env, config(node, { runtimeConfig: { ips: ['10.244.7.1'] } })), 102, /reserved for the node/);
    assert.equal(await reservationCount(node), before);
    assert.throws(() => ipIn(`${node.sb.prefix}-static4`, ['link', 'show', 'eth0']), 'no interface was left behind');
  });

  it('mtu, mac and dns from the config land on the interfaces and in the result', async () => {
    const x = await add('opts', 'eth0', { mtu: 1400, runtimeConfig: { mac: 'c2:11:22:33:44:55' }, dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] } });
    assert.equal(ipJson(x.ns, ['link', 'show', 'eth0'])[0]?.['mtu'], 1400);
    assert.equal(ipJson(x.ns, ['link', 'show', 'eth0'])[0]?.['address'], 'c2:11:22:33:44:55');
    assert.equal(ipJson(node.sb.nodeNetns, ['link', 'show', hostIfOf(x.result)])[0]?.['mtu'], 1400);
    assert.deepEqual(x.result['dns'], { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] });
    await createPodNetns(node.sb, 'badmac');
    assertCniError(await run(node, baseEnv(node, 'ADD', 'badmac'), config(node, { runtimeConfig: { mac: '01:00:5e:00:00:01' } })), 7, /multicast/);
  });

  it('CHECK: ok when intact; fails naming what is missing (host route, pod route, MAC, address, interface); 105 after DEL', async () => {
    const x = await add('chk');
    const check = { ...x.env, CNI_COMMAND: 'CHECK' };
    const ok = await run(node, check, withPrev(x.conf, x.result));
    assertOk(ok);
    assert.equal(ok.stdout, '');
    assertCniError(await run(node, check, x.conf), 7, 'Required prevResult missing');

    const res = x.result as { ips: Array<{ address: string }>; interfaces: Array<{ name: string; mac: string; sandbox?: string }> };
    const badMac = structuredClone(res);
    (badMac.interfaces.find((i) => i.sandbox) as { mac: string }).mac = 'aa:bb:cc:dd:ee:ff';
    assertCniError(await run(node, check, withPrev(x.conf, badMac)), 106, /has MAC .* but the result says aa:bb:cc:dd:ee:ff/);
    const badAddr = structuredClone(res);
    (badAddr.ips[0] as { address: string }).address = '10.244.7.99/32';
    assertCniError(await run(node, check, withPrev(x.conf, badAddr)), 106, /address 10\.244\.7\.99\/32 is missing on eth0/);

    const v4 = res.ips[0]?.address.split('/')[0] as string;
    const host = hostIfOf(x.result);
    ipIn(node.sb.nodeNetns, ['route', 'del', `${v4}/32`, 'dev', host]);
    assertCniError(await run(node, check, withPrev(x.conf, x.result)), 106, new RegExp(`route ${v4.replace(/\./g, '\\.')}/32 dev ${host} is missing`));
    ipIn(x.ns, ['route', 'del', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    const both = await run(node, check, withPrev(x.conf, x.result));
    assertCniError(both, 106, /default route via 169\.254\.1\.1 dev eth0 is missing/);
    assert.match(String(both.json?.['msg']), /route .* dev weft.* is missing on the node|on the node: route/);

    assertOk(await run(node, { ...x.env, CNI_COMMAND: 'DEL' }, withPrev(x.conf, x.result)));
    assertCniError(await run(node, check, withPrev(x.conf, x.result)), 105, /is not attached on this node/);
  });

  it('CHECK fails when the pod interface was deleted out of band', async () => {
    const x = await add('chk2');
    ipIn(x.ns, ['link', 'del', 'eth0']);
    assertCniError(await run(node, { ...x.env, CNI_COMMAND: 'CHECK' }, withPrev(x.conf, x.result)), 106, /interface eth0 is missing|interface weft.* is missing/);
  });
});

describe('GC and STATUS (cniVersion 1.1.0)', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ podCidrs: ['10.244.8.0/29', 'fd00:244:8::/64'] });
  });
  after(async () => {
    await node?.stop();
  });
  const conf11 = (o: Record<string, unknown> = {}): string => config(node, { cniVersion: '1.1.0', ...o });

  const results = new Map<string, unknown>();
  async function add(id: string): Promise<Record<string, string>> {
    const netns = await createPodNetns(node.sb, id);
    const env = baseEnv(node, 'ADD', id, 'eth0', netns);
    const r = await run(node, env, conf11());
    assertOk(r);
    results.set(id, r.json);
    return env;
  }

  it('GC keeps the valid attachments and removes every other reservation, record and link', async () => {
    await add('g1');
    await add('g2');
    const gc = { CNI_COMMAND: 'GC', CNI_PATH: node.sb.cniPath.join(':'), CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '' };
    // Neither key: nothing is removed.
    assertOk(await run(node, gc, conf11()));
    assert.equal(await reservationCount(node), 4);
    const r = await run(node, gc, conf11({ 'cni.dev/valid-attachments': [{ containerID: 'g1', ifname: 'eth0' }] }));
    assertOk(r);
    assert.equal(r.stdout, '');
    assert.equal(await reservationCount(node), 2);
    assert.equal(nodeLeftovers(node).links.length, 1);
    assert.deepEqual((await stateLeftovers(node)).records, ['g1@eth0.json']);
    // g1 still works.
    assertOk(await run(node, baseEnv(node, 'CHECK', 'g1'), conf11({ prevResult: results.get('g1') })));
    // The legacy key alone, with an empty list: everything goes.
    assertOk(await run(node, gc, conf11({ 'cni.dev/attachments': [] })));
    assert.equal(await reservationCount(node), 0);
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
  });

  it('GC removes orphan links and reservations no record explains (leftovers of a crash)', async () => {
    const pod = await createPodNetns(node.sb, 'orphan');
    execFileSync('ip', ['-n', node.sb.nodeNetns, 'link', 'add', 'weft0123456789a', 'type', 'veth', 'peer', 'name', 'x0', 'netns', pod]);
    await add('o1');
    const gc = { CNI_COMMAND: 'GC', CNI_PATH: node.sb.cniPath.join(':') };
    assertOk(await run(node, gc, conf11({ 'cni.dev/valid-attachments': [{ containerID: 'o1', ifname: 'eth0' }] })));
    assert.deepEqual(nodeLeftovers(node).links.length, 1, 'only o1 is left');
    assert.ok(!nodeLeftovers(node).links.includes('weft0123456789a'));
    assertOk(await run(node, { ...baseEnv(node, 'DEL', 'o1') }, conf11()));
  });

  it('STATUS: ok while addresses are free, 50 when the pool is exhausted, ok again after a DEL', async () => {
    const status = { CNI_COMMAND: 'STATUS' };
    const ok = await run(node, status, conf11());
    assertOk(ok);
    assert.equal(ok.stdout, '');
    // A /29 has 5 assignable addresses.
    const envs = [];
    for (let i = 0; i < 5; i++) envs.push(await add(`s${i}`));
    assertCniError(await run(node, status, conf11()), 50, /no free IPv4 address in pod range 10\.244\.8\.0\/29/);
    await createPodNetns(node.sb, 's5');
    assertCniError(await run(node, baseEnv(node, 'ADD', 's5'), conf11()), 101, /no free IPv4 address/);
    assertOk(await run(node, { ...(envs[0] as Record<string, string>), CNI_COMMAND: 'DEL' }, conf11()));
    assertOk(await run(node, status, conf11()));
  });

  it('STATUS: 51 when the node stops forwarding (existing pods are cut off too), ok once it forwards again', async () => {
    const sysctl = (v: string): void => {
      execFileSync('ip', ['netns', 'exec', node.sb.nodeNetns, 'sysctl', '-q', '-w', `net.ipv4.ip_forward=${v}`]);
    };
    sysctl('0');
    try {
      assertCniError(await run(node, { CNI_COMMAND: 'STATUS' }, conf11()), 51, /forwarding is off on this node \(net\.ipv4\.ip_forward=0\)/);
    } finally {
      sysctl('1');
    }
    assertOk(await run(node, { CNI_COMMAND: 'STATUS' }, conf11()));
  });
});
