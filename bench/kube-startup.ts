/**
 * An agent starting in a large cluster on the Kubernetes API (issue 11): a one-node lab on the
 * tests' API stand-in, filled with --nodes Nodes (the others are objects only, as peers with
 * pod blocks), --pods Pods with addresses across them, --policies NetworkPolicies. The real
 * agent of node-1 is then restarted: time until it is ready (datastore connected, the policy
 * table of the whole cluster in force), its RSS, and the requests it made. Then --changes pod
 * label changes, one at a time: time until node-1's agent enforces each (its policy fingerprint
 * equals the store's), and the requests it made meanwhile (a list would be a relist).
 *   node build/bench/kube-startup.js [--nodes 100] [--pods 5000] [--policies 1000] [--changes 10]
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getHealth } from '../src/agent/health-client.js';
import { endProcess } from '../src/kernel/exec.js';
import { labDown, labUp, startNodeAgent, waitPolicyConverged, withLabStore } from '../src/lab/lab.js';
import { loadLab, saveLab, type LabState } from '../src/lab/lab-state.js';
import type { KObject, NodeObject, PodObject } from '../src/model/objects.js';
import { snapshotFingerprint } from '../src/policy/from-objects.js';
import { readSnapshot } from '../src/policy/load.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median, pct } from './common.js';

const NODES = Number(arg('nodes', '100'));
const PODS = Number(arg('pods', '5000'));
const POLICIES = Number(arg('policies', '1000'));
const CHANGES = Number(arg('changes', '10'));
const NAMESPACES = 50;
const APPS = 20;
const name = 'kstart';

interface Req { method: string; path: string; query: string; watch: boolean; status: number; userAgent: string }

/** The stand-in's request log so far (it writes it on SIGUSR2). */
async function requests(state: LabState): Promise<Req[]> {
  const ds = state.datastore;
  if (ds.kind !== 'kubernetes' || !ds.pid) throw new Error('not a kubernetes lab');
  const file = join(state.dir, 'standin-requests.json');
  rmSync(file, { force: true });
  process.kill(ds.pid, 'SIGUSR2');
  // Written whole (a rename): present means complete.
  for (const deadline = Date.now() + 10_000; !existsSync(file); ) {
    if (Date.now() > deadline) throw new Error('the stand-in did not write its request log');
    await new Promise((r) => setTimeout(r, 20));
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Req[];
}

function summary(rs: Req[]): string {
  const agent = rs.filter((r) => r.userAgent.startsWith('weft-agent'));
  const watches = agent.filter((r) => r.watch).length;
  const gets = agent.filter((r) => r.method === 'GET' && !r.watch).length;
  return `${agent.length} requests: ${watches} watches, ${gets} GETs (lists and reads), ${agent.length - watches - gets} writes`;
}

async function fill(state: LabState): Promise<void> {
  await withLabStore(state, async (s) => {
    const inBatches = async (objs: KObject[]): Promise<void> => {
      for (let i = 0; i < objs.length; i += 32) await Promise.all(objs.slice(i, i + 32).map((o) => s.create(o)));
    };
    await inBatches(Array.from({ length: NAMESPACES }, (_, i) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${i}`, labels: { team: `t${i % 5}` } } })));
    // node-1 is the lab's; nodes 2..NODES are Node objects whose agents "run elsewhere".
    const nodes: NodeObject[] = Array.from({ length: NODES - 1 }, (_, k) => {
      const i = k + 1;
      const cidrs = [`10.244.${i}.0/24`, `fd00:10:244:${i.toString(16)}::/64`];
      return {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: `far-${i}`, annotations: { 'weft.io/backend': 'vxlan', 'weft.io/node-ips': `198.18.1.${i}`, 'weft.io/vxlan-mac': `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, 'weft.io/pod-cidrs': cidrs.join(',') } },
        spec: { podCIDR: cidrs[0], podCIDRs: cidrs },
        status: { addresses: [{ type: 'InternalIP', address: `198.18.1.${i}` }] },
      } as NodeObject;
    });
    await inBatches(nodes);
    const pods: PodObject[] = Array.from({ length: PODS }, (_, p) => {
      const node = 1 + (p % (NODES - 1));
      const k = 2 + Math.floor(p / (NODES - 1));
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `p-${p}`, namespace: `ns-${p % NAMESPACES}`, labels: { app: `a${p % APPS}` } },
        spec: { nodeName: `far-${node}`, containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80 }] }] },
        status: { phase: 'Running', podIPs: [{ ip: `10.244.${node}.${k}` }, { ip: `fd00:10:244:${node.toString(16)}::${k.toString(16)}` }] },
      } as PodObject;
    });
    await inBatches(pods);
    await inBatches(
      Array.from({ length: POLICIES }, (_, i) => ({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: `np-${i}`, namespace: `ns-${i % NAMESPACES}` },
        spec: { podSelector: { matchLabels: { app: `a${i % APPS}` } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: `a${(i + 1) % APPS}` } } }, { namespaceSelector: { matchLabels: { team: `t${i % 5}` } } }], ports: [{ port: 'http' }] }] },
      }) as KObject),
    );
  });
}

/** node-1's policy fingerprint now. */
async function fingerprintOf(state: LabState): Promise<string | undefined> {
  return (await getHealth(state.nodes[0]?.socket as string)).policy?.fingerprint;
}

/** Waits until node-1's fingerprint differs from `from`; returns the new one. */
async function waitChanged(state: LabState, from: string | undefined, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await fingerprintOf(state).catch(() => from);
    if (now !== from) return now;
    if (Date.now() > deadline) throw new Error(`node-1 did not take the change within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function waitEnforced(state: LabState, want: string, timeoutMs: number): Promise<void> {
  const node = state.nodes[0];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await getHealth(node?.socket as string).catch(() => undefined);
    if (h?.policy?.fingerprint === want && h.cluster?.datastoreConnected) return;
    if (Date.now() > deadline) throw new Error(`node-1 did not enforce the change within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  await labDown(name).catch(() => undefined);
  await labUp({ name, nodes: 1, backend: 'vxlan', datastore: 'kubernetes', cliEntry: CLI });
  try {
    let state = loadLab(name);
    const t = Date.now();
    await fill(state);
    process.stdout.write(`filled: ${NODES} nodes (1 real), ${PODS} pods, ${POLICIES} NetworkPolicies, ${NAMESPACES} namespaces in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
    await waitPolicyConverged(state, 300_000);

    // The restart: from a process start to ready with the whole cluster's policy in force.
    const node = state.nodes[0];
    if (!node?.agentPid) throw new Error('node-1 has no agent');
    await endProcess(node.agentPid, 10_000);
    const before = (await requests(state)).length;
    const want = await withLabStore(state, async (s) => snapshotFingerprint((await readSnapshot(s)).snapshot));
    const t0 = Date.now();
    await startNodeAgent(state, node, CLI);
    const answered = Date.now() - t0;
    saveLab(state); // the new pid, for lab down
    await waitEnforced(state, want, 300_000);
    const ready = Date.now() - t0;
    const pid = node.agentPid as number;
    await new Promise((r) => setTimeout(r, 5000));
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    const startReqs = (await requests(state)).slice(before);
    process.stdout.write(`restart: socket answering after ${answered} ms; ready (datastore connected, the cluster's policy in force) after ${ready} ms\n`);
    process.stdout.write(`agent RSS 5 s later: ${rss.toFixed(1)} MiB; during start-up it made ${summary(startReqs)}\n`);

    // Label changes: a remote pod moves into another app's selectors.
    const times: number[] = [];
    const mark = (await requests(state)).length;
    for (let c = 0; c < CHANGES; c++) {
      const p = (c * 37) % PODS;
      const nsName = `ns-${p % NAMESPACES}`;
      const from = await fingerprintOf(state);
      const t1 = await withLabStore(state, async (s) => {
        const pod = (await s.get<PodObject>('Pod', `p-${p}`, nsName)) as PodObject;
        await s.update({ ...pod, metadata: { ...pod.metadata, labels: { app: `a${(p + 1 + c) % APPS}` } } });
        return Date.now();
      });
      // Timed to the agent's fingerprint moving; then checked to be the store's (computing that
      // takes longer than the agent does, so it stays out of the figure).
      const got = await waitChanged(state, from, 60_000);
      times.push(Date.now() - t1);
      const target = await withLabStore(state, async (s) => snapshotFingerprint((await readSnapshot(s)).snapshot));
      if (got !== target) await waitEnforced(state, target, 60_000);
    }
    const changeReqs = (await requests(state)).slice(mark).filter((r) => r.userAgent.startsWith('weft-agent'));
    process.stdout.write(`label change -> enforced on node-1, ${CHANGES} changes: median ${median(times)} ms, p90 ${pct(times, 90)} ms (${times.join(', ')})\n`);
    process.stdout.write(`requests by the agent during the changes: ${changeReqs.length} (${changeReqs.filter((r) => r.watch).length} new watches, ${changeReqs.filter((r) => r.path.includes('/pods')).length} on pods; the rest: ${[...new Set(changeReqs.filter((r) => !r.path.includes('/pods')).map((r) => `${r.method} ${r.path}`))].join(', ') || 'none'}) — each change reached it as one event on its open Pod watch\n`);
  } finally {
    await labDown(name);
  }
}

await main();
