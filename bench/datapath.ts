/**
 * Pod-to-pod data path on one node: TCP throughput (iperf3), TCP request/response latency
 * (sockperf ping-pong) and ICMP RTT (ping), through Weft vs the reference bridge and ptp plugins
 * vs a bare veth pair between two namespaces (the physical limit of this machine).
 *
 *   node build/bench/datapath.js [--runs 3] [--seconds 5] [--json FILE]
 *
 * Runs alternate between the setups so drift hits all alike; figures are medians of the runs.
 * Both ends share the machine's CPUs. IPv4. Needs root, iperf3, sockperf.
 */
import { writeFileSync } from 'node:fs';
import { parseResult } from '../src/cni/convert.js';
import { addressOf } from '../src/cni/result.js';
import type { NetworkConfigList } from '../src/cniruntime/conflist.js';
import { CniRuntime } from '../src/cniruntime/runtime.js';
import { deleteNamedNetns } from '../src/kernel/netns.js';
import { createPodNetns, podConf, sandboxNetwork, sandboxRuntime, startSandbox, stopSandbox, type Sandbox } from '../src/lab/sandbox.js';
import { CLI, PLUGIN_BINARY } from '../test/helpers/env.js';
import { arg, hostLocal, median, referenceList } from './common.js';
import { createBarePair, measure, type Figures, type Pair } from './net-tools.js';


async function cniPair(name: string, sb: Sandbox, rt: CniRuntime, list: NetworkConfigList): Promise<Pair> {
  const ips: string[] = [];
  for (const pod of ['a', 'b']) {
    const netns = await createPodNetns(sb, `${name}${pod}`);
    const raw = await rt.add(list, podConf(`${name}-${pod}`, netns));
    ips.push(addressOf((parseResult(raw, list.cniVersion).ips ?? []).find((i) => !i.address.includes(':'))?.address ?? ''));
  }
  return { name, client: `${sb.prefix}-${name}a`, server: `${sb.prefix}-${name}b`, serverIp: ips[1] as string };
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '3'));
  const seconds = Number(arg('seconds', '5'));
  const jsonOut = arg('json', '');
  const sandboxes: Sandbox[] = [];
  const bare = ['dpbare-a', 'dpbare-b'];
  try {
    const pairs: Pair[] = [{ ...(await createBarePair('dpbare-a', 'dpbare-b')), name: 'bare veth pair' }];

    const weft = await startSandbox({ prefix: 'dpw', podCidrs: ['10.245.0.0/24'], cliEntry: CLI, pluginBinary: PLUGIN_BINARY });
    sandboxes.push(weft);
    const wp = await cniPair('weft', weft, sandboxRuntime(weft), await sandboxNetwork(weft));
    pairs.push({ ...wp, name: 'weft (routed veth)' });

    const ref = await startSandbox({ prefix: 'dpr', podCidrs: ['10.244.250.0/24'], cliEntry: CLI, pluginBinary: PLUGIN_BINARY });
    sandboxes.push(ref);
    const refRt = new CniRuntime({ path: ['/usr/lib/cni'], cacheDir: ref.cacheDir, netns: ref.nodeNetnsPath });
    const bridge = await referenceList(ref, 'dp-bridge', { type: 'bridge', bridge: 'dpbr0', isGateway: true, ipam: hostLocal(ref, ['10.243.0.0/24']) });
    const ptp = await referenceList(ref, 'dp-ptp', { type: 'ptp', ipam: hostLocal(ref, ['10.242.0.0/24']) });
    pairs.push({ ...(await cniPair('bridge', ref, refRt, bridge)), name: 'reference bridge + host-local' });
    pairs.push({ ...(await cniPair('ptp', ref, refRt, ptp)), name: 'reference ptp + host-local' });

    const figures = new Map<string, Figures>(pairs.map((p) => [p.name, { gbps: [], rrP50us: [], rrP99us: [], pingUs: [] }]));
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`run ${r + 1}/${runs} …\n`);
      for (const p of pairs) await measure(p, seconds, figures.get(p.name) as Figures);
    }
    const base = figures.get('bare veth pair') as Figures;
    const lines = [
      `Same-node pod to pod, IPv4, ${runs} runs × ${seconds} s each, medians (both ends share the 2 CPUs)`,
      '',
      '| path | TCP throughput (Gbit/s) | vs bare veth | TCP RR latency p50 (µs, RTT/2) | p99 | ping RTT (µs) |',
      '|---|---|---|---|---|---|',
      ...pairs.map((p) => {
        const f = figures.get(p.name) as Figures;
        return `| ${p.name} | ${median(f.gbps).toFixed(1)} | ${(median(f.gbps) / median(base.gbps)).toFixed(2)}× | ${median(f.rrP50us).toFixed(1)} | ${median(f.rrP99us).toFixed(1)} | ${median(f.pingUs).toFixed(0)} |`;
      }),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify(Object.fromEntries(figures), null, 2));
  } finally {
    for (const sb of sandboxes) await stopSandbox(sb);
    for (const n of bare) await deleteNamedNetns(n);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
