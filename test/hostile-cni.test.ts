import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync, promises as fs } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getHealth } from '../src/agent/health-client.js';
import { createPodNetns, startSandboxAgent, stopSandboxAgent } from '../src/lab/sandbox.js';
import { execBody, sendExec } from './helpers/agent-exec.js';
import { assertCniError, assertOk, baseEnv, config, run } from './helpers/cni.js';
import { CLI, ipJson, privilegedSkip } from './helpers/env.js';
import { DUAL_STACK, nodeLeftovers, startTestNode, type TestNode } from './helpers/node.js';

/**
 * The CNI entry points re-check everything, whoever calls them (issue: hostile input never
 * reaches the kernel): requests written straight to the agent's socket, environment values a
 * runtime would never send, netns paths that are not network namespaces, sizes and time.
 */
const skip = privilegedSkip();

/**
 * An execution straight to the agent's socket — what a rogue or broken forwarder could send:
 * the environment and config as given, no netns handle (the agent opens CNI_NETNS itself).
 */
async function raw(node: TestNode, env: Record<string, string>, conf: Record<string, unknown> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await sendExec(node.sb.socket, execBody(env, config(node, conf)));
  return { status: r.status, json: r.json ?? {} };
}

function loAddresses(node: TestNode): string[] {
  return ipJson(node.sb.nodeNetns, ['addr', 'show', 'dev', 'lo']).flatMap((l) => ((l['addr_info'] as Array<{ local: string }>) ?? []).map((a) => a.local));
}

describe('hostile CNI input (agent socket and plugin)', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
    await createPodNetns(node.sb, 'h1');
  });
  after(async () => {
    await node?.stop();
  });

  it('the socket applies the plugin\'s rules: container ids, interface names, pod names, addresses — code 4/7, nothing made', async () => {
    const lo = loAddresses(node);
    const env = baseEnv(node, 'ADD', 'h1');
    const cases: Array<[Record<string, string>, Record<string, unknown>, number, RegExp]> = [
      [{ CNI_CONTAINERID: '../../escaped' }, {}, 4, /invalid characters in containerID/],
      [{ CNI_CONTAINERID: 'a/b' }, {}, 4, /invalid characters in containerID/],
      [{ CNI_IFNAME: 'eth0\naddr add 10.9.9.9/32 dev lo' }, {}, 4, /interface name/],
      [{ CNI_IFNAME: 'eth0#x' }, {}, 4, /interface name contains #/],
      [{ CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a' }, { args: { cni: { labels: [{ key: 'a b', value: 'c' }] } } }, 7, /not a valid label/],
      [{}, { runtimeConfig: { ips: ['10.244.7.9; reboot'] } }, 7, /not an IP address/],
      [{}, { name: 'net\nx' }, 7, /invalid characters found in network name/],
    ];
    for (const [e, conf, code, msg] of cases) {
      const r = await raw(node, { ...env, ...e }, conf);
      assert.equal(r.json['code'], code, `${JSON.stringify([e, conf])} → ${JSON.stringify(r.json)}`);
      assert.match(String(r.json['msg']), msg);
    }
    assert.equal(existsSync(join(node.sb.stateDir, '..', 'escaped@eth0.json')), false, 'no file outside the state dir');
    assert.deepEqual(loAddresses(node), lo, 'no address appeared on the node');
    assert.deepEqual(nodeLeftovers(node).links, []);
  });

  it('pod names that are not Kubernetes names are no pod identity: they never name a file or an object', async () => {
    await createPodNetns(node.sb, 'h3');
    const env = { ...baseEnv(node, 'ADD', 'h3'), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=../../etc;K8S_POD_NAME=..' };
    const conf = { args: { cni: { labels: [{ key: 'app', value: 'x' }] } } };
    const r = await raw(node, env, conf);
    assert.ok(r.json['ips'], JSON.stringify(r.json));
    const rec = JSON.parse(await fs.readFile(join(node.sb.stateDir, 'attachments', 'h3@eth0.json'), 'utf8')) as { pod?: Record<string, unknown> };
    assert.deepEqual(rec.pod, { labels: { app: 'x' } });
    const del = await raw(node, { ...env, CNI_COMMAND: 'DEL' }, conf);
    assert.deepEqual(del.json, {}, 'DEL prints nothing');
  });

  it('CNI_NETNS through a symlink whose path holds a newline: attached, nothing injected', async () => {
    const dir = await fs.mkdtemp(join(node.sb.dir, 'ln-'));
    const evil = join(dir, 'ns\naddr add 10.9.9.9 dev lo');
    await fs.symlink(`/run/netns/${node.sb.prefix}-h1`, evil);
    // And the path up to the newline names a netns too: a batch line cut there would succeed,
    // and the rest of the "path" would run as the next command on the node.
    await fs.symlink(`/run/netns/${node.sb.prefix}-h1`, join(dir, 'ns'));
    const env = { ...baseEnv(node, 'ADD', 'h1'), CNI_NETNS: evil };
    const r = await run(node, env, config(node));
    assertOk(r);
    assert.ok(!loAddresses(node).includes('10.9.9.9'), 'the path never became a command');
    const inPod = ipJson(`${node.sb.prefix}-h1`, ['addr', 'show', 'dev', 'eth0']);
    assert.equal(inPod.length, 1, 'the pod got its interface');
    assertOk(await run(node, { ...baseEnv(node, 'DEL', 'h1'), CNI_NETNS: evil }, config(node)));
    assert.deepEqual(nodeLeftovers(node).links, []);
  });

  it('what is not a network namespace is code 4 with a message, at the plugin and at the socket', async () => {
    const fifo = join(node.sb.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const file = join(node.sb.dir, 'plain');
    await fs.writeFile(file, 'x');
    const cases: Array<[string, RegExp]> = [
      ['/proc/self/ns/uts', /is not a network namespace \(it is a uts namespace\)/],
      // PID 1 may be outside this container: then it is EACCES, also code 4 with a message.
      ['/proc/1/ns/mnt', /is not a network namespace \(it is a mnt namespace\)|cannot be opened: permission denied/],
      ['/tmp', /is not a network namespace \(it is a directory\)/],
      [fifo, /is not a network namespace \(it is a special file\)/],
      [file, /is not a network namespace \(it is a plain file\)/],
      [join(node.sb.dir, 'missing'), /does not exist/],
    ];
    for (const [netns, msg] of cases) {
      assertCniError(await run(node, { ...baseEnv(node, 'ADD', 'h2'), CNI_NETNS: netns }, config(node)), 4, msg);
      const r = await raw(node, { ...baseEnv(node, 'ADD', 'h2'), CNI_NETNS: netns });
      assert.equal(r.json['code'], 4, `${netns}: ${JSON.stringify(r.json)}`);
      assert.match(String(r.json['msg']), msg);
    }
    // The node's own netns, through the socket (the plugin runs in it, so its path is its own).
    const own = await raw(node, { ...baseEnv(node, 'ADD', 'h2'), CNI_NETNS: `/run/netns/${node.sb.nodeNetns}` });
    assert.equal(own.json['code'], 8, JSON.stringify(own.json));
    assert.deepEqual(nodeLeftovers(node).links, []);
  });

  it('a held netns descriptor is used only when it is the file the sender named (DEV:INO); otherwise the path is', async () => {
    // This process holds files open, as a forwarder holds a pod's netns.
    const fifo = join(node.sb.dir, 'held-fifo');
    execFileSync('mkfifo', [fifo]);
    const plain = join(node.sb.dir, 'held-plain');
    await fs.writeFile(plain, 'x');
    const own = openSync(node.sb.nodeNetnsPath, 'r');
    const pipe = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const file = openSync(plain, 'r');
    const id = (fd: number): string => {
      const st = fstatSync(fd, { bigint: true });
      return `${st.dev}:${st.ino}`;
    };
    const held = (fd: number, fileId = id(fd), pid = process.pid) => ({ pid, netnsFd: fd, netnsFile: fileId });
    try {
      await createPodNetns(node.sb, 'held');
      const env = baseEnv(node, 'ADD', 'held');
      const exec = (extra: Record<string, unknown>) => sendExec(node.sb.socket, execBody(env, config(node), extra));
      // The right DEV:INO: the descriptor wins over CNI_NETNS, whatever it is.
      assert.equal((await exec(held(own))).json?.['code'], 8, "the node's own netns, held");
      for (const [fd, what] of [[pipe, /it is a special file/], [file, /it is a plain file/]] as const) {
        const r = await exec(held(fd));
        assert.equal(r.json?.['code'], 4, JSON.stringify(r.json));
        assert.match(String(r.json?.['msg']), what);
      }
      assert.deepEqual(nodeLeftovers(node).links, []);
      // Some other file under that pid and fd (as in another pid namespace), or a pid that is
      // gone: the descriptor is ignored and CNI_NETNS, a real pod netns, is used.
      const gone = spawnSync('true').pid as number;
      for (const extra of [held(own, `${id(own).split(':')[0] ?? ''}:1`), held(pipe, id(own)), held(own, id(own), gone)]) {
        const r = await exec(extra);
        assert.equal(r.exit, 0, `${JSON.stringify(extra)}: ${r.stdout}`);
        assert.equal(nodeLeftovers(node).links.length, 1);
        assert.equal((await sendExec(node.sb.socket, execBody({ ...env, CNI_COMMAND: 'DEL' }, config(node)))).exit, 0);
      }
      // A descriptor without its DEV:INO is a malformed request.
      const bare = await sendExec(node.sb.socket, execBody(env, config(node), { pid: process.pid, netnsFd: own }));
      assert.equal(bare.json?.['code'], 6, JSON.stringify(bare.json));
      assert.match(String(bare.json?.['msg']), /"netnsFile" must be "DEV:INO"/);
    } finally {
      for (const fd of [own, pipe, file]) closeSync(fd);
    }
    assert.deepEqual(nodeLeftovers(node).links, []);
  });

  it('oversize input is a non-retryable error naming the limit, at the socket and at the plugin', async () => {
    const big = await raw(node, baseEnv(node, 'ADD', 'h1'), { dns: { options: ['x'.repeat(3 << 20)] } });
    assert.equal(big.json['code'], 5, JSON.stringify(big.json).slice(0, 300));
    assert.match(String(big.json['msg']), /accepts at most 2097152 bytes/);
    const r = await run(node, baseEnv(node, 'ADD', 'h1'), config(node, { padding: 'x'.repeat(1_500_000) }));
    assertCniError(r, 5, /larger than 1048576 bytes/);
  });

  it('a plugin whose stdin never closes gives up within its time limit (code 5), it does not hang', async () => {
    const t0 = Date.now();
    const { execPlugin } = await import('./helpers/env.js');
    const r = await execPlugin(node.plugin, baseEnv(node, 'ADD', 'h1'), config(node), { keepStdinOpen: true, timeoutMs: 20_000, netns: node.sb.nodeNetnsPath });
    assertCniError(r, 5, /stdin was not closed within 10 s/);
    assert.ok(Date.now() - t0 < 15_000);
  });

  it('idle connections are capped and timed out; the agent keeps answering', async () => {
    const sockets: Socket[] = [];
    const closed = new Set<Socket>();
    for (let i = 0; i < 150; i++) {
      const s = connect(node.sb.socket);
      s.on('error', () => undefined);
      s.on('close', () => closed.add(s));
      sockets.push(s);
    }
    const tRefused = Date.now();
    while (closed.size < 150 - 128 && Date.now() - tRefused < 3000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(closed.size >= 150 - 128, `connections beyond 128 are refused (${closed.size} closed)`);
    const t0 = Date.now();
    while (closed.size < sockets.length && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    assert.equal(closed.size, sockets.length, 'every idle connection was closed by the agent');
    process.stderr.write(`idle connections: all 150 closed by the agent ${Date.now() - t0} ms after the first refusals\n`);
    assert.ok((await getHealth(node.sb.socket)).ok);
  });

  it('the socket is 0600 from the start and its directory is made 0700 even when it existed; a shared directory is refused', async () => {
    await stopSandboxAgent(node.sb);
    await fs.chmod(node.sb.dir, 0o755);
    await startSandboxAgent(node.sb, { podCidrs: DUAL_STACK, cliEntry: CLI });
    assert.equal((await fs.stat(node.sb.dir)).mode & 0o777, 0o700);
    assert.equal((await fs.stat(node.sb.socket)).mode & 0o777, 0o600);
    const r = spawnSync('nsenter', [`--net=${node.sb.nodeNetnsPath}`, '--', process.execPath, CLI, 'agent', '--state-dir', join(node.sb.dir, 'other'), '--socket', `/tmp/weft-${node.sb.prefix}.sock`, '--pod-cidr', '10.250.0.0/24'], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /the socket's directory \/tmp is shared .*give --socket a path in a directory of its own/);
    assert.equal((await fs.stat('/tmp')).mode & 0o7777, 0o1777, '/tmp untouched');
  });
});
