/**
 * CNI ADD and DEL on a node of a 3-node lab with NetworkPolicies in force: the calls a kubelet
 * makes, through the node's installed plugin (the compiled forwarder) to its agent. The Pod
 * object exists before ADD (as kubelet's pods do), its labels put it in the policies' selectors,
 * and ADD returns only once the pod's policy is in force on the node — so it includes that wait.
 *
 *   node build/bench/cni-lab.js [--pods 50] [--rounds 3] [--concurrent 20] [--policies 100] [--datastore etcd|file]
 *     [--variants helper,process]  (the agent's nftables helper; an `nft` process per sync: a lab each)
 *
 * Needs root (a lab: namespaces of its own; the machine's own network is untouched).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadNetwork } from '../src/cniruntime/loader.js';
import { CniRuntime, type RuntimeConf } from '../src/cniruntime/runtime.js';
import { createNamedNetns, deleteNamedNetns } from '../src/kernel/netns.js';
import { labDown, labUp, waitPolicyConverged, withLabStore } from '../src/lab/lab.js';
import { nsCreate, podCreate } from '../src/lab/lab-pods.js';
import { loadLab, type LabState } from '../src/lab/lab-state.js';
import type { NetworkPolicyObject, PodObject } from '../src/model/objects.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median, pct } from './common.js';

const NAMESPACES = 10;
const APPS = 20;

/** Policies of varied shapes over the lab's namespaces: pod and namespace selectors, numbered and named ports, every third with egress. */
function policies(n: number): NetworkPolicyObject[] {
  return Array.from({ length: n }, (_, j) => {
    const spec: NonNullable<NetworkPolicyObject['spec']> = {
      podSelector: { matchLabels: { app: `a${j % APPS}` } },
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { app: `a${(j * 7) % APPS}` } } }, { namespaceSelector: { matchLabels: { team: `t${j % 5}` } } }],
          ports: [{ port: 80, protocol: 'TCP' }, { port: 'http' }, { port: 8000, endPort: 8100 + (j % 50) }],
        },
      ],
    };
    if (j % 3 === 0) {
      spec.egress = [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 443 }] }, { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { tier: 'db' } } }], ports: [{ port: 5432 }] }];
      spec.policyTypes = ['Ingress', 'Egress'];
    }
    return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: `ns-${j % NAMESPACES}`, name: `pol-${j}` }, spec };
  });
}

interface Series {
  add: number[];
  del: number[];
}

interface Variant {
  label: string;
  agentArgs: string[];
}

/** The agent options compared, each in a lab of its own: how the policy table reaches the kernel. */
const VARIANTS: Record<string, Variant> = {
  helper: { label: 'nftables helper', agentArgs: [] },
  process: { label: '`nft` process per sync (--no-nft-helper)', agentArgs: ['--no-nft-helper'] },
};

async function main(): Promise<void> {
  const pods = Number(arg('pods', '50'));
  const rounds = Number(arg('rounds', '3'));
  const concurrent = Number(arg('concurrent', '20'));
  const count = Number(arg('policies', '100'));
  const datastore = arg('datastore', 'etcd') as 'etcd' | 'file';
  const which = arg('variants', 'helper,process').split(',');
  const rows: string[] = [];
  const where: string[] = [];
  for (const key of which) {
    const v = VARIANTS[key];
    if (!v) throw new Error(`--variants ${key}: expected ${Object.keys(VARIANTS).join(', ')}`);
    const r = await runLab(v, { pods, rounds, concurrent, count, datastore });
    const row = (label: string, s: Series): string => `| ${label} | ${median(s.add).toFixed(1)} | ${pct(s.add, 90).toFixed(1)} | ${Math.max(...s.add).toFixed(1)} | ${median(s.del).toFixed(1)} | ${pct(s.del, 90).toFixed(1)} | ${Math.max(...s.del).toFixed(1)} |`;
    rows.push(row(`${v.label}, sequential`, r.seq), row(`${v.label}, ${concurrent} concurrent`, r.conc));
    where.push(`${v.label}:`, ...r.where);
  }
  process.stdout.write(
    [
      `CNI on node-1 of a 3-node vxlan lab (${datastore}), ${count} NetworkPolicies in force, dual-stack pods selected by them; ${rounds} rounds of ${pods} sequential and ${concurrent} concurrent pods, a lab per variant, ms:`,
      '',
      '| calls | ADD median | p90 | max | DEL median | p90 | max |',
      '|---|---|---|---|---|---|---|',
      ...rows,
      '',
      'Where the time goes, by the agent of node-1 (medians, ms):',
      ...where,
      '',
    ].join('\n'),
  );
}

async function runLab(variant: Variant, o: { pods: number; rounds: number; concurrent: number; count: number; datastore: 'etcd' | 'file' }): Promise<{ seq: Series; conc: Series; where: string[] }> {
  const { pods, rounds, concurrent, count, datastore } = o;
  const name = `bcl${randomBytes(2).toString('hex')}`;
  const seq: Series = { add: [], del: [] };
  const conc: Series = { add: [], del: [] };
  let state: LabState | undefined;
  try {
    process.stderr.write(`lab ${name}: 3 nodes, ${datastore}, ${count} policies, ${variant.label}\n`);
    await labUp({ name, nodes: 3, backend: 'vxlan', datastore, cliEntry: CLI, agentLogLevel: 'debug', extraAgentArgs: variant.agentArgs });
    for (let i = 0; i < NAMESPACES; i++) await nsCreate(name, `ns-${i}`, { team: `t${i % 5}` });
    // Pods on every node, so that the policies' sets have members across the cluster.
    for (let i = 0; i < 9; i++) await podCreate(name, { namespace: `ns-${i}`, name: `bg-${i}`, node: `node-${(i % 3) + 1}`, labels: { app: `a${i}`, tier: i % 2 ? 'db' : 'web' }, ports: [{ port: 80, protocol: 'TCP', name: 'http' }] }, CLI);
    state = loadLab(name);
    await withLabStore(state, async (s) => {
      for (const p of policies(count)) await s.create(p);
    });
    await waitPolicyConverged(state, 120_000);
    const node = state.nodes[0];
    if (!node) throw new Error('the lab has no node');
    const rt = new CniRuntime({ path: [node.binDir, '/usr/lib/cni'], cacheDir: node.cacheDir, netns: `/run/netns/${node.netns}` });
    const list = await loadNetwork(node.confDir);
    const lab = state;
    let serial = 0;

    /** A pod as kubelet has it before ADD: its object in the datastore, its netns made. */
    const prepare = async (): Promise<RuntimeConf> => {
      const i = serial++;
      const ns = `ns-${i % NAMESPACES}`;
      const pod = `p${i}`;
      const obj: PodObject = { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: ns, name: pod, labels: { app: `a${i % APPS}` } }, spec: { nodeName: node.name, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }] }, status: { phase: 'Pending' } };
      await withLabStore(lab, (s) => s.create(obj));
      const netns = `${lab.prefix}.b${i}`;
      await createNamedNetns(netns);
      return {
        containerId: `bench-${i}`,
        netns: `/run/netns/${netns}`,
        ifName: 'eth0',
        capabilityArgs: {},
        args: [
          ['IgnoreUnknown', '1'],
          ['K8S_POD_NAMESPACE', ns],
          ['K8S_POD_NAME', pod],
        ],
      };
    };
    const cleanup = async (conf: RuntimeConf): Promise<void> => {
      await deleteNamedNetns(conf.netns.split('/').pop() as string);
      const ns = conf.args?.find(([k]) => k === 'K8S_POD_NAMESPACE')?.[1] as string;
      const pod = conf.args?.find(([k]) => k === 'K8S_POD_NAME')?.[1] as string;
      await withLabStore(lab, (s) => s.delete('Pod', pod, ns));
    };
    const timed = async (f: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };

    const measuredFrom = new Date().toISOString();
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`round ${r + 1}/${rounds}\n`);
      const confs: RuntimeConf[] = [];
      for (let i = 0; i < pods; i++) confs.push(await prepare());
      for (const c of confs) seq.add.push(await timed(() => rt.add(list, c)));
      for (const c of confs) seq.del.push(await timed(() => rt.del(list, c)));
      for (const c of confs) await cleanup(c);
      const many: RuntimeConf[] = [];
      for (let i = 0; i < concurrent; i++) many.push(await prepare());
      conc.add.push(...(await Promise.all(many.map((c) => timed(() => rt.add(list, c))))));
      conc.del.push(...(await Promise.all(many.map((c) => timed(() => rt.del(list, c))))));
      for (const c of many) await cleanup(c);
    }
    return { seq, conc, where: whereTimeGoes(node.log, measuredFrom) };
  } finally {
    await labDown(name).catch((err: Error) => process.stderr.write(`lab down: ${err.message}\n`));
  }
}

/**
 * Medians of the agent's own account (its log, at debug level) of the calls measured: each
 * ADD's parts, and each policy sync's phases while they ran.
 */
function whereTimeGoes(logFile: string, from: string): string[] {
  const lines = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{'));
  const entries = lines.map((l) => JSON.parse(l) as { time: string; msg: string; changes?: unknown; ms?: Record<string, number> }).filter((e) => e.time >= from && e.ms);
  const parts = (msg: string, which: (e: { changes?: unknown }) => boolean = () => true): Map<string, number[]> => {
    const out = new Map<string, number[]>();
    for (const e of entries.filter((x) => x.msg === msg && which(x))) for (const [k, v] of Object.entries(e.ms ?? {})) out.set(k, [...(out.get(k) ?? []), v]);
    return out;
  };
  const show = (label: string, m: Map<string, number[]>): string =>
    `- ${label} (${m.values().next().value?.length ?? 0}): ${[...m].map(([k, v]) => `${k} ${median(v).toFixed(1)}`).join(', ')}`;
  return [
    show('ADDs, sequential and concurrent', parts('attached')),
    show('policy syncs that changed the table', parts('policy synced', (e) => e.changes !== 0)),
    show('policy syncs with nothing to change', parts('policy synced', (e) => e.changes === 0)),
  ];
}

void main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
