/**
 * Across nodes: TCP throughput and latency per backend (VXLAN, host-gw) in the lab, next to the
 * same-node path in the same lab and a bare veth pair (this machine's limit); and how long a
 * joining node takes until every node routes to it.
 *
 *   node build/bench/cluster.js [--runs 5] [--seconds 5] [--joins 5] [--json FILE]
 *
 * Runs alternate between the paths so drift hits all alike; figures are medians. Needs root,
 * iperf3, sockperf. Both ends of every path share the machine's CPUs, and so do the "nodes".
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { getHealth } from '../src/agent/health-client.js';
import { deleteNamedNetns } from '../src/kernel/netns.js';
import { labDown, labNodeAdd, labNodeRemove, labUp, waitConverged } from '../src/lab/lab.js';
import { labProbe, nsCreate, podCreate } from '../src/lab/lab-pods.js';
import { loadLab } from '../src/lab/lab-state.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median } from './common.js';
import { createBarePair, measure, type Figures, type Pair } from './net-tools.js';

const ports = [{ port: 80, protocol: 'TCP' as const }];

async function labPaths(backend: 'vxlan' | 'host-gw'): Promise<{ name: string; paths: Pair[] }> {
  const name = `bench-${backend === 'vxlan' ? 'vx' : 'hg'}`;
  await labDown(name).catch(() => undefined);
  await labUp({ name, nodes: 2, backend, datastore: 'file', cliEntry: CLI });
  await nsCreate(name, 'b', {});
  const a = await podCreate(name, { namespace: 'b', name: 'a', node: 'node-1', labels: {}, ports }, CLI);
  const same = await podCreate(name, { namespace: 'b', name: 'same', node: 'node-1', labels: {}, ports }, CLI);
  const far = await podCreate(name, { namespace: 'b', name: 'far', node: 'node-2', labels: {}, ports }, CLI);
  const h = await getHealth(loadLab(name).nodes[0]?.socket as string);
  process.stderr.write(`${backend}: pod MTU ${h.mtu}\n`);
  const [n1, n2] = loadLab(name).nodes;
  return {
    name,
    paths: [
      { name: `${backend}: same node`, client: a.netns, server: same.netns, serverIp: same.addresses[0] as string },
      { name: `${backend}: across nodes`, client: a.netns, server: far.netns, serverIp: far.addresses[0] as string },
      // What the lab's underlay itself carries, node to node (veth, the switch's bridge, veth): the
      // limit of any path across these nodes, below a bare veth pair. Measured once (the labs share the topology).
      ...(backend === 'host-gw' && n1 && n2 ? [{ name: 'underlay: node to node, no Weft path (veth, bridge, veth)', client: n1.netns, server: n2.netns, serverIp: n2.ips[0] as string }] : []),
      // The kernel's VXLAN alone over the same underlay, node to node (no pod veths, no Weft):
      // what any VXLAN path across these nodes starts from.
      ...(backend === 'host-gw' && n1 && n2 ? [kernelVxlan(n1, n2)] : []),
    ],
  };
}

/** A VXLAN device in each of two lab nodes (their own netns), as Weft's backend makes one: MTU 1450, learning off. */
function kernelVxlan(a: { netns: string; ips: string[] }, b: { netns: string; ips: string[] }): Pair {
  const ends = [
    [a, b, '10.199.0.1'],
    [b, a, '10.199.0.2'],
  ] as const;
  for (const [self, peer, addr] of ends) {
    const ip = (...args: string[]): void => {
      const r = spawnSync('ip', ['-n', self.netns, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')} in ${self.netns}: ${r.stderr}`);
    };
    ip('link', 'add', 'bvx0', 'type', 'vxlan', 'id', '199', 'local', self.ips[0] as string, 'remote', peer.ips[0] as string, 'dstport', '4789', 'nolearning');
    ip('link', 'set', 'bvx0', 'mtu', '1450', 'up');
    ip('addr', 'add', `${addr}/24`, 'dev', 'bvx0');
  }
  return { name: 'kernel VXLAN alone: node to node (no pod veths, no Weft)', client: a.netns, server: b.netns, serverIp: '10.199.0.2' };
}

async function joinTimes(joins: number): Promise<number[]> {
  const name = 'bench-join';
  await labDown(name).catch(() => undefined);
  await labUp({ name, nodes: 2, backend: 'vxlan', datastore: 'file', cliEntry: CLI });
  await nsCreate(name, 'j', {});
  await podCreate(name, { namespace: 'j', name: 'probe', node: 'node-1', labels: {}, ports }, CLI);
  const out: number[] = [];
  try {
    for (let i = 0; i < joins; i++) {
      const t0 = performance.now();
      const n = await labNodeAdd(name, CLI); // returns once the new agent answers
      await waitConverged(loadLab(name), 30_000); // every agent has routes to every other
      out.push(performance.now() - t0);
      // A pod on the new node is reachable from node-1 right after (checked, not timed).
      await podCreate(name, { namespace: 'j', name: `p${i}`, node: n.name, labels: {}, ports }, CLI);
      const r = await labProbe(name, { namespace: 'j', name: 'probe' }, `j/p${i}`, 80, 'TCP', 4, 2000);
      if (!r.ok) throw new Error(`a pod on ${n.name} was not reachable after convergence: ${r.error}`);
      await labNodeRemove(name, n.name);
    }
  } finally {
    await labDown(name);
  }
  return out;
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '5'));
  const seconds = Number(arg('seconds', '5'));
  const joins = Number(arg('joins', '5'));
  const jsonOut = arg('json', '');
  const bare = ['cbbare-a', 'cbbare-b'];
  const labs: string[] = [];
  try {
    const paths: Pair[] = [{ ...(await createBarePair('cbbare-a', 'cbbare-b')), name: 'bare veth pair (the limit)' }];
    for (const backend of ['vxlan', 'host-gw'] as const) {
      const l = await labPaths(backend);
      labs.push(l.name);
      paths.push(...l.paths);
    }
    const figures = new Map<string, Figures>(paths.map((p) => [p.name, { gbps: [], rrP50us: [], rrP99us: [], pingUs: [] }]));
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`run ${r + 1}/${runs} …\n`);
      for (const p of paths) await measure(p, seconds, figures.get(p.name) as Figures);
    }
    for (const l of labs) await labDown(l);
    labs.length = 0;
    process.stderr.write('node joins …\n');
    const join = await joinTimes(joins);

    const base = figures.get('bare veth pair (the limit)') as Figures;
    const underlay = [...figures.entries()].find(([n]) => n.startsWith('underlay'))?.[1];
    const vs = (f: Figures, ref: Figures | undefined): string => (ref ? `${(median(f.gbps) / median(ref.gbps)).toFixed(2)}×` : '—');
    const lines = [
      `Pod to pod, IPv4, ${runs} runs × ${seconds} s, medians (min–max of throughput); all "nodes" share the 2 CPUs`,
      '',
      '| path | TCP Gbit/s | min–max | vs bare veth | vs underlay | TCP RR p50 µs | p99 µs | ping RTT µs |',
      '|---|---|---|---|---|---|---|---|',
      ...paths.map((p) => {
        const f = figures.get(p.name) as Figures;
        return `| ${p.name} | ${median(f.gbps).toFixed(1)} | ${Math.min(...f.gbps).toFixed(1)}–${Math.max(...f.gbps).toFixed(1)} | ${vs(f, base)} | ${vs(f, underlay)} | ${median(f.rrP50us).toFixed(1)} | ${median(f.rrP99us).toFixed(1)} | ${median(f.pingUs).toFixed(0)} |`;
      }),
      '',
      `Node join, ${joins} joins into a 2-node vxlan lab: from starting the new agent to every agent having routes to every other: median ${median(join).toFixed(0)} ms (min ${Math.min(...join).toFixed(0)}, max ${Math.max(...join).toFixed(0)})`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ figures: Object.fromEntries(figures), joinMs: join }, null, 2));
  } finally {
    for (const l of labs) await labDown(l).catch(() => undefined);
    for (const n of bare) await deleteNamedNetns(n);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
