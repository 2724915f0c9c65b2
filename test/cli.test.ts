import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPodNetns } from '../src/lab/sandbox.js';
import { CLI, privilegedSkip } from './helpers/env.js';
import { startTestNode, type TestNode } from './helpers/node.js';

/** The `weft` command line as operators and scripts use it. */
function weft(args: string[], opts: { netns?: string } = {}): { code: number; stdout: string; stderr: string } {
  const [cmd, full] = opts.netns ? ['nsenter', [`--net=${opts.netns}`, '--', process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  const r = spawnSync(cmd, full, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const noStack = (s: string): void => assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+/, `no stack trace for bad input:\n${s}`);

describe('weft CLI', { skip: existsSync(CLI) ? undefined : 'dist/weft.mjs is missing: run `npm run build`' }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help lists the commands; each subcommand documents its flags and defaults', () => {
    const top = weft(['--help']);
    assert.equal(top.code, 0);
    for (const c of ['agent', 'install', 'uninstall', 'cni', 'demo']) assert.match(top.stdout, new RegExp(`\\b${c}\\b`));
    const agent = weft(['agent', '--help']).stdout;
    for (const f of ['--state-dir', '--socket', '--pod-cidr', '--mtu', '/var/lib/weft', '/run/weft/cni.sock', '1500']) assert.ok(agent.includes(f), f);
    const install = weft(['install', '--help']).stdout;
    for (const f of ['--cni-bin-dir', '--cni-conf-dir', '--socket', '/opt/cni/bin', '/etc/cni/net.d']) assert.ok(install.includes(f), f);
    for (const sub of ['add', 'check', 'del', 'gc', 'status']) {
      const h = weft(['cni', sub, '--help']).stdout;
      for (const f of ['--conf-dir', '--bin-dir', '--netns', '--container-id', '--ifname', '--args']) assert.ok(h.includes(f), `cni ${sub} ${f}`);
    }
  });

  it('bad flags are refused with a message that says what is accepted, exit 2, no stack', () => {
    const cases: Array<[string[], RegExp]> = [
      [['agent'], /--pod-cidr is required/],
      [['agent', '--pod-cidr', '10.0.0.5/24'], /host bits set; for a \/24 the network address is 10\.0\.0\.0/],
      [['agent', '--pod-cidr', 'banana'], /not a CIDR/],
      [['agent', '--pod-cidr', '10.0.0.0/24', '--pod-cidr', '10.1.0.0/24'], /different families/],
      [['agent', '--pod-cidr', '10.0.0.0/31'], /too small: use a \/30 or larger/],
      [['agent', '--pod-cidr', '10.0.0.0/24', '--mtu', 'x'], /--mtu x: expected an integer 68-65535/],
      [['install', '--socket', 'relative.sock', '--cni-bin-dir', dir, '--cni-conf-dir', dir], /expected an absolute path/],
      [['install', '--network-name', 'bad/name', '--cni-bin-dir', dir, '--cni-conf-dir', dir], /--network-name bad\/name/],
      [['cni', 'add', '--conf-dir', dir, '--netns', 'x'], /--container-id is required|no network configuration/],
    ];
    for (const [args, msg] of cases) {
      const r = weft(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, msg, args.join(' '));
      noStack(r.stderr);
    }
    assert.equal(weft(['agent', '--pod-cidr', 'banana']).code, 2);
    const unknown = weft(['frobnicate']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown command/);
  });

  it('install writes an executable plugin and a conflist naming the socket; uninstall removes both and is idempotent', () => {
    const bin = join(dir, 'bin');
    const conf = join(dir, 'net.d');
    const r = weft(['install', '--cni-bin-dir', bin, '--cni-conf-dir', conf, '--socket', '/run/weft/test.sock', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(readFileSync(join(conf, '10-weft.conflist'), 'utf8')) as { plugins: Array<{ type: string; socket?: string }> };
    assert.equal(written.plugins[0]?.socket, '/run/weft/test.sock');
    const v = spawnSync(join(bin, 'weft'), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' }, encoding: 'utf8' });
    assert.equal(v.status, 0, 'the plugin runs even with a PATH that has no node');
    assert.match(v.stdout, /"supportedVersions"/);
    assert.equal(weft(['uninstall', '--cni-bin-dir', bin, '--cni-conf-dir', conf]).code, 0);
    assert.equal(existsSync(join(bin, 'weft')) || existsSync(join(conf, '10-weft.conflist')), false);
    assert.match(weft(['uninstall', '--cni-bin-dir', bin, '--cni-conf-dir', conf]).stdout, /nothing to remove/);
  });

  it('uninstall refuses to remove a conflist that is not weft\'s', () => {
    const conf = join(dir, 'other');
    weft(['install', '--cni-bin-dir', join(dir, 'b2'), '--cni-conf-dir', conf]);
    writeFileSync(join(conf, '10-weft.conflist'), JSON.stringify({ name: 'x', plugins: [{ type: 'bridge' }] }));
    const r = weft(['uninstall', '--cni-bin-dir', join(dir, 'b2'), '--cni-conf-dir', conf]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a weft conflist/);
    assert.ok(existsSync(join(conf, '10-weft.conflist')));
  });
});

describe('weft cni and weft agent against a node', { skip: privilegedSkip() }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  it('weft cni add|check|del|status drive the installed network like a runtime', async () => {
    const netns = await createPodNetns(node.sb, 'cli');
    const common = ['--conf-dir', node.sb.confDir, '--bin-dir', node.sb.cniPath.join(':'), '--cache-dir', node.sb.cacheDir, '--in-netns', node.sb.nodeNetnsPath];
    const pod = ['--netns', netns, '--container-id', 'cli1'];
    const add = weft(['cni', 'add', ...common, ...pod, '--args', 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=cli', '--json']);
    assert.equal(add.code, 0, add.stderr);
    const result = JSON.parse(add.stdout) as { ips: Array<{ address: string }> };
    assert.equal(result.ips.length, 2);
    assert.equal(weft(['cni', 'check', ...common, ...pod]).code, 0);
    assert.equal(weft(['cni', 'status', ...common]).code, 0);
    assert.equal(weft(['cni', 'del', ...common, ...pod]).code, 0);
    const check = weft(['cni', 'check', ...common, ...pod, '--json']);
    assert.equal(check.code, 1);
    assert.match(check.stdout, /"code":\d+/);
    // gc with a valid list runs every plugin's GC (the list negotiates 1.1.0).
    assert.equal(weft(['cni', 'gc', ...common, '--valid', 'nothing/eth0']).code, 0);
  });

  it('weft health: alive and ready (a single node has no datastore to wait for); nothing on a socket is exit 1, said plainly', () => {
    const alive = weft(['health', '--socket', node.sb.socket]);
    assert.equal(alive.code, 0, alive.stderr);
    assert.match(alive.stdout, /^alive: \d+ pods attached\n$/);
    const ready = weft(['health', '--ready', '--socket', node.sb.socket, '--json']);
    assert.equal(ready.code, 0, ready.stderr);
    assert.equal((JSON.parse(ready.stdout) as { ok: boolean }).ok, true);
    const none = weft(['health', '--socket', join(node.sb.dir, 'nobody.sock')]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no agent answers on .*nobody\.sock/);
    noStack(none.stderr);
  });

  it('a second agent on the same state dir or socket is refused with a clear message', () => {
    const sameState = weft(['agent', '--state-dir', node.sb.stateDir, '--socket', join(node.sb.dir, 'other.sock'), '--pod-cidr', '10.9.0.0/24'], { netns: node.sb.nodeNetnsPath });
    assert.equal(sameState.code, 1);
    assert.match(sameState.stderr, /another weft agent \(pid \d+\) is using state dir/);
    noStack(sameState.stderr);
    const sameSocket = weft(['agent', '--state-dir', join(node.sb.dir, 'state2'), '--socket', node.sb.socket, '--pod-cidr', '10.9.0.0/24'], { netns: node.sb.nodeNetnsPath });
    assert.equal(sameSocket.code, 1);
    assert.match(sameSocket.stderr, /another agent is already serving/);
  });
});
