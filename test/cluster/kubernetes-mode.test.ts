import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadNetwork } from '../../src/cniruntime/loader.js';
import { CniRuntime, type RuntimeConf } from '../../src/cniruntime/runtime.js';
import { hostIfName } from '../../src/datapath/names.js';
import { endProcess } from '../../src/kernel/exec.js';
import { createNamedNetns, deleteNamedNetns } from '../../src/kernel/netns.js';
import { startNodeAgent, waitConverged, waitPolicyConverged, withLabStore } from '../../src/lab/lab.js';
import { saveLab, type LabNode } from '../../src/lab/lab-state.js';
import type { PodObject } from '../../src/model/objects.js';
import { CLI, privilegedSkip } from '../helpers/env.js';
import { kill9, labIp, labKernelState, pingFrom, startLab, type TestLab } from '../helpers/lab.js';

/**
 * Weft as a Kubernetes cluster runs it, on the API stand-in: the pod addresses it annotates at
 * ADD, an ADD whose Pod is not (yet) visible, the DaemonSet's agents replaced one node at a time
 * under traffic, and `weft uninstall --all` on a node whose agent is gone.
 */
const skip = privilegedSkip();

async function eventually<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `weft …` in a node's netns, as its init container or an operator on the node would run it. */
function weftOnNode(lab: TestLab, node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', `${lab.state().prefix}.${node.name}`, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('Kubernetes mode (vxlan, the API stand-in)', { skip }, () => {
  let lab: TestLab;
  const node = (name: string): LabNode => lab.state().nodes.find((n) => n.name === name) as LabNode;

  before(async () => {
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'kubernetes' });
    await lab.ns('x');
  });
  after(async () => {
    await lab?.down();
  });

  it("writes each pod's addresses on its Pod at ADD (weft.io/pod-ips), as Calico does", async () => {
    const a = await lab.pod({ namespace: 'x', name: 'a', node: 'node-1' });
    const ips = await eventually('the annotation', () => withLabStore(lab.state(), async (s) => (await s.get<PodObject>('Pod', 'a', 'x'))?.metadata.annotations?.['weft.io/pod-ips']));
    assert.equal(ips, a.addresses.join(','));
    assert.equal(a.addresses.length, 2, 'both families');
  });

  it('an ADD waits briefly for its Pod: one created during the wait is attached; one never created fails with code 11 naming it', async () => {
    const n1 = node('node-1');
    const rt = new CniRuntime({ path: [n1.binDir, '/usr/lib/cni'], cacheDir: n1.cacheDir, netns: `/run/netns/${n1.netns}` });
    const list = await loadNetwork(n1.confDir);
    const conf = (name: string): RuntimeConf => ({
      containerId: `test-${name}`,
      netns: `/run/netns/${lab.state().prefix}.p-x-${name}`,
      ifName: 'eth0',
      args: [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', 'x'], ['K8S_POD_NAME', name]],
      capabilityArgs: {},
    });
    const made: string[] = [];
    try {
      for (const name of ['late', 'ghost']) {
        await createNamedNetns(`${lab.state().prefix}.p-x-${name}`);
        made.push(name);
      }
      // The Pod appears a second into the ADD (the informer has not seen it; the agent polls).
      const t0 = Date.now();
      const late = rt.add(list, conf('late'));
      await new Promise((r) => setTimeout(r, 1000));
      await withLabStore(lab.state(), (s) => s.create<PodObject>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'late', namespace: 'x', labels: { app: 'late' } }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] } }));
      await late;
      process.stderr.write(`ADD of a Pod created 1 s into it: attached after ${Date.now() - t0} ms\n`);
      await rt.del(list, conf('late'));

      const t1 = Date.now();
      await assert.rejects(rt.add(list, conf('ghost')), (err: Error & { code?: number }) => {
        assert.equal(err.code, 11, err.message);
        assert.match(err.message, /the API server has no Pod x\/ghost after 5 s; its labels, and so its policy, are unknown/);
        return true;
      });
      const waited = Date.now() - t1;
      process.stderr.write(`ADD of a Pod that never appears: failed after ${waited} ms\n`);
      assert.ok(waited >= 5000, `it waited the 5 s (${waited} ms)`);
      const links = labIp(lab, 'node-1', ['link', 'show']).map((l) => String(l['ifname']));
      assert.ok(!links.includes(hostIfName('test-ghost', 'eth0')), 'the failed ADD left no link');
      assert.equal((await withLabStore(lab.state(), (s) => s.list('WeftEndpoint'))).items.filter((e) => e.metadata.name === 'ghost').length, 0, 'the failed ADD left no endpoint');
    } finally {
      for (const name of made) await deleteNamedNetns(`${lab.state().prefix}.p-x-${name}`).catch(() => undefined);
      await withLabStore(lab.state(), (s) => s.delete('Pod', 'late', 'x')).catch(() => undefined);
    }
  });

  it("the DaemonSet's agents replaced one node at a time (init container re-run, SIGTERM, a new agent): a 10 ms ping across loses nothing, the kernel is unchanged", async () => {
    const b = await lab.pod({ namespace: 'x', name: 'b', node: 'node-2' });
    // The lab's agents leave the cluster on SIGTERM; a DaemonSet's do not. Swap them for such (kill -9: no leaving).
    const state = lab.state();
    for (const n of state.nodes) {
      await kill9(n.agentPid as number);
      await startNodeAgent(state, n, CLI, { leaveOnExit: false });
    }
    saveLab(state);
    await waitConverged(state);
    await waitPolicyConverged(state);

    // Taken once IPv6 DAD has finished on b's new link (a "tentative" address is the kernel's, in progress).
    const before = await eventually('DAD done', async () => {
      const ks = state.nodes.map((n) => labKernelState(lab, n.name));
      return ks.some((k) => k.includes('tentative')) ? undefined : ks;
    });
    const count = 1200;
    const ping4 = pingFrom(lab, 'x/a', b.addresses[0] as string, count, 10);
    const ping6 = pingFrom(lab, 'x/a', b.addresses[1] as string, count, 10);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    for (const n of state.nodes) {
      // maxUnavailable 1: the old pod ends (SIGTERM, graceful), the new one's init container installs, its agent starts.
      await endProcess(n.agentPid as number, 10_000);
      const installed = await weftOnNode(lab, n, ['install', '--cni-bin-dir', n.binDir, '--cni-conf-dir', n.confDir, '--socket', n.socket]);
      assert.equal(installed.code, 0, installed.stderr);
      await startNodeAgent(state, n, CLI, { leaveOnExit: false });
      saveLab(state);
    }
    await waitConverged(state);
    const rolled = Date.now() - t0;
    const [r4, r6] = await Promise.all([ping4, ping6]);
    process.stderr.write(`rolling replacement of 2 agents took ${rolled} ms; ping every 10 ms: IPv4 ${r4.received}/${r4.sent}, IPv6 ${r6.received}/${r6.sent}\n`);
    assert.ok(r4.sent >= count - 10 && r6.sent >= count - 10, `the pings ran (${r4.sent}, ${r6.sent} sent)`);
    assert.ok(rolled < (count * 10) - 500, `the replacement (${rolled} ms) happened while they ran`);
    assert.equal(r4.received, r4.sent, `IPv4: lost ${r4.sent - r4.received}: ${r4.out}`);
    assert.equal(r6.received, r6.sent, `IPv6: lost ${r6.sent - r6.received}: ${r6.out}`);
    await waitPolicyConverged(state);
    await new Promise((r) => setTimeout(r, 1500)); // a few more of the new agents' loops
    assert.deepEqual(state.nodes.map((n) => labKernelState(lab, n.name)), before, 'nothing in either kernel changed');
    assert.ok((await lab.probe('x/b', 'x/a', 80, 'TCP', 6)).ok, 'b → a after the rollout');
  });

  it('uninstall --all on a node: refused while its agent runs; once it is stopped, no Weft link, route, nft table, file or conflist is left', async () => {
    const n2 = node('node-2');
    const args = ['uninstall', '--all', '--cni-bin-dir', n2.binDir, '--cni-conf-dir', n2.confDir, '--state-dir', n2.stateDir, '--socket', n2.socket];
    const refused = await weftOnNode(lab, n2, args);
    assert.equal(refused.code, 2, 'a user error');
    assert.match(refused.stderr, /an agent answers on .*: stop it first/);
    assert.ok(existsSync(join(n2.confDir, '10-weft.conflist')), 'nothing removed when refused');

    await endProcess(n2.agentPid as number, 10_000); // the DaemonSet deleted: its agent ends, leaving everything in place
    const weftLinks = (): string[] => labIp(lab, 'node-2', ['link', 'show']).map((l) => String(l['ifname'])).filter((l) => l.startsWith('weft'));
    const weftRoutes = (): unknown[] => [...labIp(lab, 'node-2', ['route', 'show', 'proto', '77']), ...labIp(lab, 'node-2', ['-6', 'route', 'show', 'proto', '77'])];
    assert.ok(weftLinks().length >= 2 && weftRoutes().length === 2, `before: ${weftLinks().join(' ')}`);
    const done = await weftOnNode(lab, n2, args);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /removed nft table inet weft_policy\n/);
    assert.match(done.stdout, /removed link weft\.vxlan\n/);
    assert.deepEqual(weftLinks(), [], 'no Weft link');
    assert.deepEqual(weftRoutes(), [], 'no Weft route');
    const nft = await new Promise<string>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', `${lab.state().prefix}.node-2`, 'nft', 'list', 'tables'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', () => resolve(out));
    });
    assert.doesNotMatch(nft, /weft/, 'no Weft nft table');
    for (const f of [join(n2.confDir, '10-weft.conflist'), join(n2.binDir, 'weft'), n2.stateDir, n2.socket]) assert.ok(!existsSync(f), `${f} is gone`);
    const again = await weftOnNode(lab, n2, args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'nothing to remove\n', 'a second run finds nothing');
    const st = lab.state();
    delete (st.nodes.find((n) => n.name === 'node-2') as LabNode).agentPid;
    saveLab(st);
  });
});
