import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getHealth, waitForAgent } from '../src/agent/health-client.js';
import { saveLab, type LabNode } from '../src/lab/lab-state.js';
import { labWireguardDevice, waitConverged } from '../src/lab/lab.js';
import { ROOT, privilegedSkip } from './helpers/env.js';
import { kill9, startLab, type TestLab } from './helpers/lab.js';
import { missingBinaries, podmanConf } from './helpers/runtimes.js';

/**
 * The container image (deploy/image/Containerfile, scripts/build-image.sh), built here from no
 * registry and run under podman as the DaemonSet runs it, in a lab node on the API stand-in: its
 * init container installs the plugin, its agent takes over the node from the lab's (adopting
 * what that one left in the kernel), attaches a pod that reaches a pod on the other node, and
 * exits cleanly on SIGTERM. Private podman storage, removed with the test.
 */
const skip = privilegedSkip() ?? missingBinaries(['podman', 'runc', 'conmon', 'mmdebstrap']);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the container image under podman (the API stand-in)', { skip }, () => {
  let lab: TestLab;
  let dir: string;
  const tag = `localhost/weft-test-${randomBytes(3).toString('hex')}:0.1.0`;
  const container = `weft-test-agent-${randomBytes(3).toString('hex')}`;
  let env: NodeJS.ProcessEnv;

  const exec = (cmd: string, args: string[], timeoutMs = 120_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  const podman = (args: string[], timeoutMs?: number): Promise<Run> => exec('podman', args, timeoutMs);

  before(async () => {
    dir = mkdtempSync('/var/tmp/weft-image-test-');
    for (const d of ['tmp', 'cni-bin', 'cni-conf']) mkdirSync(join(dir, d));
    // No podman network is used (the containers run with none, or in a lab node's netns).
    writeFileSync(join(dir, 'containers.conf'), podmanConf(join(dir, 'cni-bin'), join(dir, 'cni-conf'), dir));
    writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'storage')}"\nrunroot = "${join(dir, 'run')}"\n`);
    env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf') };
    const t0 = Date.now();
    // The suite runs on a fresh build: setup must not rebuild dist/ under the other tests' feet.
    const built = await exec(join(ROOT, 'scripts', 'build-image.sh'), ['--tag', tag], 600_000, { WEFT_SKIP_BUILD: '1' });
    assert.equal(built.code, 0, `${built.stdout}\n${built.stderr}`);
    process.stderr.write(`image built in ${Date.now() - t0} ms: ${built.stdout.trim().split('\n').pop()}\n`);
    // Encrypted: the image's wg and wireguard-go carry node-2's pod traffic once its agent runs.
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'kubernetes', encryption: 'wireguard' });
    await lab.ns('x');
  });

  after(async () => {
    if (dir) {
      await podman(['rm', '--force', '--time', '0', container]);
      await podman(['rmi', '--force', tag]);
    }
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("installs the plugin as the init container; its agent takes over node-2, attaches a pod that reaches node-1's, and exits 0 on SIGTERM", async () => {
    const a = await lab.pod({ namespace: 'x', name: 'a', node: 'node-1' });
    const state = lab.state();
    const n2 = state.nodes.find((n) => n.name === 'node-2') as LabNode;
    await kill9(n2.agentPid as number); // the lab's agent goes (no leaving); the image's replaces it
    delete n2.agentPid;
    saveLab(state);

    // The init container, as deploy/weft.yaml runs it: the host's CNI dirs mounted under /host.
    const init = await podman(['run', '--rm', '--network', 'none', '-v', `${n2.binDir}:/host/opt/cni/bin`, '-v', `${n2.confDir}:/host/etc/cni/net.d`, tag, 'weft', 'install', '--cni-bin-dir', '/host/opt/cni/bin', '--cni-conf-dir', '/host/etc/cni/net.d', '--socket', n2.socket]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /installed \/host\/opt\/cni\/bin\/weft\nwrote \/host\/etc\/cni\/net\.d\/10-weft\.conflist/);

    // The agent container, as the DaemonSet runs it: the node's network, host PIDs, privileged;
    // the lab's directory (state, socket, kubeconfig, the stand-in's socket) at the same paths.
    const d = state.datastore;
    assert.equal(d.kind, 'kubernetes');
    const labDir = join('/run/weft/labs', lab.name);
    const run = await podman([
      'run', '--detach', '--name', container,
      '--network', `ns:/run/netns/${n2.netns}`, '--pid', 'host', '--privileged',
      '-v', `${labDir}:${labDir}`, '-v', '/run/netns:/run/netns:rslave',
      '-e', 'NODE_OPTIONS=--max-semi-space-size=1 --v8-pool-size=1',
      tag, 'weft', 'agent', '--datastore=kubernetes', `--kubeconfig=${d.kind === 'kubernetes' ? (d.agentKubeconfig ?? d.kubeconfig) : ''}`, '--node-name=node-2',
      ...n2.ips.map((ip) => `--node-ip=${ip}`), `--cluster-cidr=${state.clusterCidrs.join(',')}`, '--backend=vxlan', '--encryption=wireguard', `--wireguard-device=${labWireguardDevice(n2)}`, '--mtu=auto',
      `--state-dir=${n2.stateDir}`, `--socket=${n2.socket}`,
    ]);
    assert.equal(run.code, 0, run.stderr);
    await waitForAgent(n2.socket, 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${(await podman(['logs', container])).stderr}`);
    });
    await waitConverged(lab.state());
    const health = await getHealth(n2.socket);
    assert.deepEqual(health.cluster?.peers, ['node-1']);
    // The data plane the lab's agents chose on this machine, now from the image's programs: a
    // lab wireguard-go serves its socket outside the container, out of this agent's sight, so
    // the agent made the device again with the image's (the same key, from the state dir).
    const n1 = state.nodes.find((n) => n.name === 'node-1') as LabNode;
    assert.equal(health.cluster?.encryption?.implementation, (await getHealth(n1.socket)).cluster?.encryption?.implementation);

    const b = await lab.pod({ namespace: 'x', name: 'b', node: 'node-2' });
    for (const family of [4, 6] as const) {
      const r = await lab.probe('x/b', 'x/a', 80, 'TCP', family);
      assert.ok(r.ok, `b (attached by the image's agent) → a, IPv${family}: ${r.error}`);
      assert.equal(r.reply, `x/a ${b.addresses[family === 4 ? 0 : 1]}`);
      assert.ok((await lab.probe('x/a', 'x/b', 80, 'TCP', family)).ok, `a → b, IPv${family}`);
    }
    void a;

    const stop = await podman(['stop', '--time', '20', container]);
    assert.equal(stop.code, 0, stop.stderr);
    const exit = await podman(['inspect', '--format', '{{.State.ExitCode}}', container]);
    const logs = await podman(['logs', container]);
    assert.equal(exit.stdout.trim(), '0', `exit status 0 on SIGTERM\n${logs.stdout}${logs.stderr}`);
    const logged = logs.stdout + logs.stderr;
    assert.match(logged, /"msg":"adopted the policy table in force"/, "it took over the lab agent's table unchanged");
    // The helpers built on this machine run in the image (else the agent falls back to ip and nft processes).
    assert.match(logged, /"msg":"agent ready".*"podLinks":"netlink","policyTable":"nft-helper"/, 'the rtnetlink and nftables helpers work in the image');
    assert.match(logged, /"msg":"attached".*"containerId":"lab-x-b"/, 'this agent attached b');
    assert.match(logged, /"msg":"agent stopped".*"signal":"SIGTERM"/);
  });
});
