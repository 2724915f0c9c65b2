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
import { podLabel } from '../../src/lab/lab-pods.js';
import { KUBE_RESOURCES } from '../../src/datastore/kubernetes-store.js';
import { KubeClient } from '../../src/datastore/kube-client.js';
import { kubeconfigConnection } from '../../src/datastore/kube-connection.js';
import type { NetworkPolicyObject, PodObject } from '../../src/model/objects.js';
import { CLI, privilegedSkip } from '../helpers/env.js';
import { kill9, labIp, labKernelState, pingFrom, standinFault, standinRequests, startLab, type StandinRequest, type TestLab } from '../helpers/lab.js';

/**
 * Weft as a Kubernetes cluster runs it, on the API stand-in: the pod addresses it annotates at
 * ADD, an ADD whose Pod is not (yet) visible, the API server misbehaving under enforced policy,
 * the DaemonSet's agents replaced one node at a time under traffic, and `weft uninstall --all`
 * on a node whose agent is gone.
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

/** A command in a node's netns. */
function onNode(lab: TestLab, node: LabNode, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', `${lab.state().prefix}.${node.name}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `weft …` in a node's netns, as its init container or an operator on the node would run it. */
const weftOnNode = (lab: TestLab, node: LabNode, args: string[]): ReturnType<typeof onNode> => onNode(lab, node, [process.execPath, CLI, ...args]);

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
    // The agents wrote it as the weft-agent service account, held to deploy/weft.yaml's RBAC:
    // through pods/status, never able to change the Pod itself.
    const ds = lab.state().datastore;
    assert.ok(ds.kind === 'kubernetes' && ds.agentKubeconfig);
    const asAgent = new KubeClient(kubeconfigConnection(ds.agentKubeconfig), 'rbac-check');
    try {
      const res = await asAgent.request('PATCH', '/api/v1/namespaces/x/pods/a', { body: { metadata: { labels: { app: 'other' } } }, contentType: 'application/merge-patch+json' });
      assert.equal(res.status, 403, 'the agents cannot patch a Pod, only its status');
    } finally {
      asAgent.close();
    }
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

  it('the API server drops every watch, forgets its history (410), answers 500 and 429, and stops answering for 10 s: enforcement holds throughout, nothing relists in a loop, and a later change is enforced', async () => {
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2', labels: { app: 'b' } });
    await lab.pod({ namespace: 'x', name: 'c', node: 'node-1', labels: { app: 'c' } });
    await withLabStore(lab.state(), (s) =>
      s.create<NetworkPolicyObject>({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'b-from-a', namespace: 'x' },
        spec: { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { run: 'a' } } }] }] },
      }),
    );
    await podLabel(lab.name, { namespace: 'x', name: 'a' }, { run: 'a' }, []);
    await waitPolicyConverged(lab.state());
    const enforced = async (when: string): Promise<void> => {
      assert.ok((await lab.probe('x/a', 'x/b', 80)).ok, `${when}: a → b allowed`);
      assert.equal((await lab.probe('x/c', 'x/b', 80)).ok, false, `${when}: c → b denied`);
    };
    await enforced('before');
    const plurals = new Set(Object.values(KUBE_RESOURCES).map((r) => r.plural));
    const agentLists = (rs: StandinRequest[]): StandinRequest[] => rs.filter((r) => r.userAgent.startsWith('weft-agent') && r.method === 'GET' && !r.watch && plurals.has(r.path.split('/').pop() ?? ''));
    const start = (await standinRequests(lab)).length;

    await standinFault(lab, { fault: 'dropWatches' });
    await new Promise((r) => setTimeout(r, 1000));
    await enforced('every watch dropped');
    // A write the agents see (a Namespace), then the history before it is gone: resuming from
    // anything older is 410, and those informers list again, once. No bookmarks meanwhile: one
    // arriving between the write and the compaction would carry a watch past it (no 410), which
    // on a loaded machine left too few informers behind it (a CI run: fewer than 2 lists).
    await standinFault(lab, { fault: 'holdBookmarks' });
    try {
      await lab.ns('fault-marker');
      await standinFault(lab, { fault: 'compact' });
      await standinFault(lab, { fault: 'dropWatches' });
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      await standinFault(lab, { fault: 'releaseBookmarks' });
    }
    await enforced('history compacted');
    // Each dropped watch comes back at once: those are the requests answered 500, then 429.
    await standinFault(lab, { fault: 'failNext', count: 10, status: 500 });
    await standinFault(lab, { fault: 'dropWatches' });
    await new Promise((r) => setTimeout(r, 3000));
    await standinFault(lab, { fault: 'failNext', count: 10, status: 429 });
    await standinFault(lab, { fault: 'dropWatches' });
    await new Promise((r) => setTimeout(r, 3000));
    await enforced('500s and 429s');
    await standinFault(lab, { fault: 'pause' });
    try {
      await new Promise((r) => setTimeout(r, 5000));
      await enforced('the API server not answering');
      await new Promise((r) => setTimeout(r, 5000));
    } finally {
      await standinFault(lab, { fault: 'resume' });
    }

    // Recovered: a label change made now is enforced on node-2.
    const t0 = Date.now();
    await podLabel(lab.name, { namespace: 'x', name: 'c' }, { run: 'a' }, []);
    await eventually('c → b allowed after its label change', async () => ((await lab.probe('x/c', 'x/b', 80)).ok ? true : undefined), 20_000);
    process.stderr.write(`after the faults, a label change was enforced across nodes in ${Date.now() - t0} ms\n`);
    assert.ok((await lab.probe('x/a', 'x/b', 80)).ok, 'after: a → b still allowed');

    const served = (await standinRequests(lab)).slice(start);
    const agents = served.filter((r) => r.userAgent.startsWith('weft-agent'));
    assert.ok(agents.some((r) => r.status === 500) && agents.some((r) => r.status === 429), 'the agents were answered 500 and 429');
    assert.ok(agents.some((r) => r.watch && r.status === 200), 'and watched again');
    const during = agentLists(served);
    assert.ok(during.length >= 2, 'after the history was compacted, each agent listed again');
    // Each agent relists at most each kind it watches, once (the 410), and nothing else does.
    const kinds = plurals.size;
    process.stderr.write(`agents' lists during the faults: ${during.length} (${during.map((r) => r.path).sort().join(' ')})\n`);
    assert.ok(during.length <= 2 * kinds, `${during.length} lists by 2 agents watching ${kinds} kinds: ${during.map((r) => r.path).join(' ')}`);
    const quietFrom = (await standinRequests(lab)).length;
    await new Promise((r) => setTimeout(r, 5000));
    assert.deepEqual(agentLists((await standinRequests(lab)).slice(quietFrom)).map((r) => r.path), [], 'no list at all once it is over');
  });

  it("the DaemonSet's agents replaced one node at a time (init container re-run, SIGTERM, a new agent): a 10 ms ping across loses nothing, the kernel is unchanged", async () => {
    const b = lab.state().pods.find((p) => p.name === 'b') ?? (await lab.pod({ namespace: 'x', name: 'b', node: 'node-2', labels: { app: 'b' } }));
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
    // The pings run from before the first agent goes until after the last is back and converged.
    const stopPing = new AbortController();
    const ping4 = pingFrom(lab, 'x/a', b.addresses[0] as string, 1_000_000, 10, stopPing.signal);
    const ping6 = pingFrom(lab, 'x/a', b.addresses[1] as string, 1_000_000, 10, stopPing.signal);
    let rolled = 0;
    try {
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
      rolled = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      stopPing.abort();
    }
    const [r4, r6] = await Promise.all([ping4, ping6]);
    process.stderr.write(`rolling replacement of 2 agents took ${rolled} ms; ping every 10 ms: IPv4 ${r4.received}/${r4.sent}, IPv6 ${r6.received}/${r6.sent}\n`);
    // ping sends at most one per interval, fewer on a loaded machine: at least half of them.
    assert.ok(r4.sent >= (rolled + 1500) / 20 && r6.sent >= (rolled + 1500) / 20, `the pings ran throughout (${r4.sent}, ${r6.sent} sent over ${rolled + 1500} ms)`);
    // Every ping answered but those sent in the last 0.5 s, on their way when ping was stopped
    // (a second after the rollout was over).
    for (const [fam, r] of [['IPv4', r4], ['IPv6', r6]] as const) {
      assert.deepEqual(r.lost.filter((q) => q <= r.sent - 50), [], `${fam}: no answer to pings ${r.lost.join(', ')} of ${r.sent}: ${r.out}`);
    }
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
    // What is not Weft's stays: a link, a route and an nft table of someone else's on the node.
    for (const cmd of [['ip', 'link', 'add', 'weftx0', 'type', 'veth', 'peer', 'name', 'weftx1'], ['ip', 'route', 'add', '203.0.113.0/24', 'dev', 'eth0'], ['nft', 'add', 'table', 'inet', 'keepme']]) {
      const r = await onNode(lab, n2, cmd);
      assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
    }
    const weftLinks = (): string[] => labIp(lab, 'node-2', ['link', 'show']).map((l) => String(l['ifname'])).filter((l) => l.startsWith('weft') && !l.startsWith('weftx'));
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
    assert.match(nft, /table inet keepme/, "someone else's table stays");
    assert.ok(labIp(lab, 'node-2', ['link', 'show', 'weftx0']).length === 1, "someone else's link stays, though its name starts with weft");
    assert.equal(labIp(lab, 'node-2', ['route', 'show', '203.0.113.0/24']).length, 1, "someone else's route stays");
    assert.match(done.stdout, /removed sysctl net\.ipv4\.ip_forward \(back to [01]\)\n/, 'forwarding put back as it was before Weft');
    for (const f of [join(n2.confDir, '10-weft.conflist'), join(n2.binDir, 'weft'), n2.stateDir, n2.socket]) assert.ok(!existsSync(f), `${f} is gone`);
    const again = await weftOnNode(lab, n2, args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'nothing to remove\n', 'a second run finds nothing');
    const st = lab.state();
    delete (st.nodes.find((n) => n.name === 'node-2') as LabNode).agentPid;
    saveLab(st);
  });
});
