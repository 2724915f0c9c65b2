import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SUPPORTED_VERSIONS } from '../src/cni/version.js';
import { createPodNetns } from '../src/lab/sandbox.js';
import { assertCniError, assertOk, baseEnv, config, reservationCount, run } from './helpers/cni.js';
import { execPlugin, privilegedSkip } from './helpers/env.js';
import { nodeLeftovers, startTestNode, type TestNode } from './helpers/node.js';

/** The CNI execution protocol at the plugin's edge: environment, config, versions, error codes. */
const skip = privilegedSkip();

describe('plugin protocol (real binary)', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
    await createPodNetns(node.sb, 't1');
  });
  after(async () => {
    await node?.stop();
  });

  it('VERSION answers with every supported version, ignoring stdin (empty, garbage, or never closed)', async () => {
    for (const stdin of [undefined, 'not json at all']) {
      const r = await execPlugin(node.plugin, { CNI_COMMAND: 'VERSION' }, stdin);
      assertOk(r);
      assert.deepEqual(r.json, { cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    }
    const open = await execPlugin(node.plugin, { CNI_COMMAND: 'VERSION' }, undefined, { keepStdinOpen: true, timeoutMs: 10_000 });
    assertOk(open);
  });

  it('without CNI_COMMAND: exit 0, nothing on stdout, the about banner on stderr', async () => {
    const r = await execPlugin(node.plugin, {}, '');
    assertOk(r);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /CNI protocol versions supported: 0\.1\.0, .*1\.1\.0/);
  });

  it('unknown and lower-case commands are code 4 naming the command', async () => {
    for (const c of ['FOO', 'add']) assertCniError(await run(node, { ...baseEnv(node, c) }, config(node)), 4, `unknown CNI_COMMAND: ${c}`);
  });

  it('ADD: each missing variable is code 4 naming it; all missing is one error listing all', async () => {
    for (const v of ['CNI_NETNS', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']) {
      const env = baseEnv(node, 'ADD');
      env[v] = '';
      assertCniError(await run(node, env, config(node)), 4, `required env variables [${v}] missing`);
    }
    assertCniError(await run(node, { CNI_COMMAND: 'ADD' }, config(node)), 4, 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing');
    assertCniError(await run(node, { ...baseEnv(node, 'CHECK'), CNI_NETNS: '' }, config(node)), 4, 'required env variables [CNI_NETNS] missing');
    assert.equal(await reservationCount(node), 0);
  });

  it('bad container ids and interface names are code 4 and create nothing', async () => {
    for (const id of ['bad id!', '-abc', 'a/b', '.x']) {
      const r = await run(node, { ...baseEnv(node, 'ADD'), CNI_CONTAINERID: id }, config(node));
      assertCniError(r, 4, 'invalid characters in containerID');
      assert.equal(r.json?.['details'], id);
    }
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_IFNAME: 'abcdefghijklmnop' }, config(node)), 4, 'interface name is too long');
    for (const n of ['.', '..']) assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_IFNAME: n }, config(node)), 4, 'interface name is . or ..');
    for (const n of ['et/h0', 'eth 0', 'eth0:1', 'a\tb']) {
      assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_IFNAME: n }, config(node)), 4, 'interface name contains / or : or whitespace characters');
    }
    assert.equal(await reservationCount(node), 0);
    assert.deepEqual(nodeLeftovers(node).links, []);
  });

  it('CNI_ARGS: a pair without "=" or an unknown key is code 4; IgnoreUnknown=1 accepts them', async () => {
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_ARGS: 'novalue' }, config(node)), 4, 'CNI_ARGS: invalid pair "novalue"');
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_ARGS: 'FOO=bar' }, config(node)), 4, 'CNI_ARGS: unknown args ["FOO=bar"]');
    const env = { ...baseEnv(node, 'ADD', 'argsok'), CNI_ARGS: 'IgnoreUnknown=1;FOO=bar;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=argsok;K8S_POD_UID=u' };
    await createPodNetns(node.sb, 'argsok');
    assertOk(await run(node, env, config(node)));
    assertOk(await run(node, { ...env, CNI_COMMAND: 'DEL' }, config(node)));
  });

  it('config: empty or truncated JSON is 6 (ADD and DEL), a numeric cniVersion 6, no name 7, bad name 7', async () => {
    assertCniError(await run(node, baseEnv(node, 'ADD'), ''), 6);
    assertCniError(await run(node, baseEnv(node, 'ADD'), '{"cniVersion":"1.0.0",'), 6);
    assertCniError(await run(node, baseEnv(node, 'DEL'), '{"cniVersion":"1.0.0",'), 6);
    assertCniError(await run(node, baseEnv(node, 'ADD'), config(node, { cniVersion: 100 })), 6);
    // The forwarder finds the agent by the config's "socket" alone, so the nameless config keeps it.
    assertCniError(await run(node, baseEnv(node, 'ADD'), JSON.stringify({ cniVersion: '1.0.0', type: 'weft', socket: node.sb.socket })), 7, 'missing network name');
    for (const name of ['bad/name', '.hidden']) {
      const r = await run(node, baseEnv(node, 'ADD'), config(node, { name }));
      assertCniError(r, 7, 'invalid characters found in network name');
      assert.equal(r.json?.['details'], name);
    }
  });

  it('versions: unsupported is 1 naming config and supported list (DEL too); CHECK < 0.4.0 and GC/STATUS < 1.1.0 are 1', async () => {
    for (const cmd of ['ADD', 'DEL']) {
      const r = await run(node, baseEnv(node, cmd), config(node, { cniVersion: '9.9.9' }));
      assertCniError(r, 1, 'incompatible CNI versions');
      assert.match(String(r.json?.['details']), /config is "9\.9\.9", plugin supports \["0\.1\.0" .*"1\.1\.0"\]/);
    }
    assertCniError(await run(node, baseEnv(node, 'CHECK'), config(node, { cniVersion: '0.3.1' })), 1, 'config version does not allow CHECK');
    assertCniError(await run(node, { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, config(node)), 1);
    assertCniError(await run(node, { CNI_COMMAND: 'STATUS' }, config(node)), 1);
  });

  it('a netns that does not exist, or is not a netns, is code 4 and changes nothing', async () => {
    const file = `${node.sb.dir}/not-a-netns`;
    await fs.writeFile(file, '');
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_NETNS: `/run/netns/${node.sb.prefix}-nosuch` }, config(node)), 4, /does not exist/);
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_NETNS: file }, config(node)), 4, /is not a network namespace/);
    assert.equal(await reservationCount(node), 0);
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
  });

  it("the node's own netns as CNI_NETNS is refused (libcni's code 8)", async () => {
    assertCniError(await run(node, { ...baseEnv(node, 'ADD'), CNI_NETNS: node.sb.nodeNetnsPath }, config(node)), 8, /node's own network namespace/);
    assert.equal(await reservationCount(node), 0);
  });

  it('"ipam" in the config is code 2 naming the field; an unknown key is ignored', async () => {
    assertCniError(await run(node, baseEnv(node, 'ADD'), config(node, { ipam: { type: 'host-local' } })), 2, /unsupported field "ipam"/);
    const env = baseEnv(node, 'ADD', 'unknownkey');
    await createPodNetns(node.sb, 'unknownkey');
    assertOk(await run(node, env, config(node, { foo: 1, args: { something: { else: true } } })));
    assertOk(await run(node, { ...env, CNI_COMMAND: 'DEL' }, config(node)));
  });

  it('an agent that is not running: ADD is 11 (try again), STATUS 50', async () => {
    const gone = { socket: `${node.sb.dir}/no-agent.sock` };
    assertCniError(await run(node, baseEnv(node, 'ADD'), config(node, gone)), 11, /weft agent is not reachable/);
    assertCniError(await run(node, { CNI_COMMAND: 'STATUS' }, config(node, { ...gone, cniVersion: '1.1.0' })), 50, /not reachable/);
  });

  it('only a whole answer of the agent is printed: another server on the socket, or a cut answer, is 11', async () => {
    const answers: Array<[string, RegExp]> = [
      // an HTTP server that is not a weft agent (or an older one): no exit status
      ['HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n{"cniVersion":"1.0.0"}', /carries no exit status/],
      // the agent's answer, cut short by a crash
      ['HTTP/1.1 200 OK\r\nx-cni-exit: 0\r\nContent-Length: 500\r\n\r\n{"cniVersion":"1.0.0","ips":[', /was cut short/],
      ['HTTP/1.1 200 OK\r\nx-cni-exit: 256\r\nContent-Length: 2\r\n\r\n{}', /carries no exit status/],
      ['not http at all', /not an HTTP answer/],
      ['', /closed the connection without an answer/],
    ];
    const path = `${node.sb.dir}/impostor.sock`;
    let reply = '';
    const server = createServer((c) => {
      c.once('data', () => c.end(reply));
      c.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      for (const [text, msg] of answers) {
        reply = text;
        assertCniError(await run(node, baseEnv(node, 'ADD'), config(node, { socket: path })), 11, msg);
      }
      // An empty cniVersion comes back as it was given, nothing else (the forwarder's own error).
      reply = '';
      const r = await run(node, baseEnv(node, 'ADD'), JSON.stringify({ cniVersion: '', name: 'n', type: 'weft', socket: path }));
      assert.equal(r.json?.['cniVersion'], '');
    } finally {
      server.close();
    }
  });

  it('every supported version: ADD prints its result in exactly that version, and an absent cniVersion means 0.1.0', async () => {
    for (const v of [...SUPPORTED_VERSIONS, undefined]) {
      const id = `ver${(v ?? 'none').replace(/\./g, '')}`;
      const netns = await createPodNetns(node.sb, id);
      const env = baseEnv(node, 'ADD', id, 'eth0', netns);
      const conf = v === undefined ? JSON.stringify({ name: node.list.name, type: 'weft', socket: node.sb.socket }) : config(node, { cniVersion: v });
      const r = await run(node, env, conf);
      assertOk(r);
      const want = v ?? '0.1.0';
      assert.equal(r.json?.['cniVersion'], want);
      if (want === '0.1.0' || want === '0.2.0') {
        assert.match(String((r.json?.['ip4'] as { ip?: string }).ip), /^10\.244\.7\.\d+\/32$/);
        assert.match(String((r.json?.['ip6'] as { ip?: string }).ip), /^fd00:244:7::[0-9a-f]+\/128$/);
      } else {
        const ips = r.json?.['ips'] as Array<Record<string, unknown>>;
        assert.equal(ips.length, 2);
        for (const ip of ips) assert.equal('version' in ip, !want.startsWith('1.'), `${want}: ${JSON.stringify(ip)}`);
      }
      assertOk(await run(node, { ...env, CNI_COMMAND: 'DEL' }, conf));
    }
    assert.equal(await reservationCount(node), 0);
  });

  it('stdout holds exactly one JSON value on success; logs never go to stdout', async () => {
    const netns = await createPodNetns(node.sb, 'onejson');
    const r = await run(node, baseEnv(node, 'ADD', 'onejson', 'eth0', netns), config(node));
    assertOk(r);
    assert.doesNotThrow(() => JSON.parse(r.stdout));
    const d = await run(node, baseEnv(node, 'DEL', 'onejson', 'eth0', netns), config(node));
    assertOk(d);
    assert.equal(d.stdout, '');
  });
});
