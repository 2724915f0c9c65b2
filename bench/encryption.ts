/**
 * What encryption between nodes costs: pod to pod across nodes in a 2-node lab encrypted by
 * WireGuard (the data plane it chose here: wireguard-go where the kernel has no module), next to
 * the same in an unencrypted VXLAN lab and a bare veth pair, in one run; CPU per Gbit/s; the
 * agents' and wireguard-go's RSS with encryption on; a key rotation under a bulk TCP stream.
 *
 *   node build/bench/encryption.js [--runs 5] [--seconds 5] [--json FILE]
 *
 * Runs alternate between the paths so drift hits all alike; figures are medians. Both "nodes"
 * share the machine's CPUs, so CPU per Gbit/s counts both ends.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { getHealth } from '../src/agent/health-client.js';
import { deleteNamedNetns } from '../src/kernel/netns.js';
import { labDown, labNodeRotateKey, labUp } from '../src/lab/lab.js';
import { nsCreate, podCreate } from '../src/lab/lab-pods.js';
import { loadLab } from '../src/lab/lab-state.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median } from './common.js';
import { createBarePair, measure, type Figures, type Pair } from './net-tools.js';

const ports = [{ port: 80, protocol: 'TCP' as const }];

/** The RSS of every wireguard-go process (MiB), from /proc. */
function wireguardGoRss(): string[] {
  const r = spawnSync('ps', ['-C', 'wireguard-go', '-o', 'rss='], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((x) => x.trim() !== '').map((k) => (Number(k) / 1024).toFixed(1));
}

async function acrossNodes(name: string, encryption: 'wireguard' | undefined): Promise<{ path: Pair; dataPlane: string; mtu: number }> {
  await labDown(name).catch(() => undefined);
  await labUp({ name, nodes: 2, backend: 'vxlan', datastore: 'file', cliEntry: CLI, ...(encryption ? { encryption } : {}) });
  await nsCreate(name, 'b', {});
  const a = await podCreate(name, { namespace: 'b', name: 'a', node: 'node-1', labels: {}, ports }, CLI);
  const far = await podCreate(name, { namespace: 'b', name: 'far', node: 'node-2', labels: {}, ports }, CLI);
  const h = await getHealth(loadLab(name).nodes[0]?.socket as string);
  const dataPlane = h.cluster?.encryption ? `WireGuard (${h.cluster.encryption.implementation})` : 'VXLAN (kernel)';
  return { path: { name: `${encryption ? 'encrypted' : 'vxlan, not encrypted'}: across nodes`, client: a.netns, server: far.netns, serverIp: far.addresses[0] as string }, dataPlane, mtu: h.mtu };
}

/**
 * A bulk TCP stream across the encrypted lab (iperf3, 0.1 s intervals, 8 s) while node-1 rotates
 * its key 4 s in, one direction per call: the intervals around the rotation next to the
 * stream's median and to its lowest intervals elsewhere (wireguard-go dips without a rotation).
 */
async function rotationUnderLoad(lab: string, client: string, server: string, serverIp: string, reverse: boolean): Promise<string> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-B', serverIp], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 400));
  const run = new Promise<string>((resolve) => {
    const c = spawn('ip', ['netns', 'exec', client, 'iperf3', '-c', serverIp, '-t', '8', '-i', '0.1', '-J', ...(reverse ? ['-R'] : [])]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', () => resolve(out));
  });
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 4000));
  const at = (performance.now() - t0) / 1000;
  await labNodeRotateKey(lab, 'node-1');
  const j = JSON.parse(await run) as { intervals: Array<{ sum: { start: number; bits_per_second: number } }> };
  srv.kill('SIGKILL');
  const v = j.intervals.map((i) => ({ t: i.sum.start, mbps: i.sum.bits_per_second / 1e6 }));
  const med = median(v.map((x) => x.mbps));
  const near = v.filter((x) => x.t >= at - 0.2 && x.t < at + 0.8);
  const far = v.filter((x) => x.t < at - 0.2 || x.t >= at + 0.8).map((x) => x.mbps);
  return `${reverse ? 'node-2 → node-1' : 'node-1 → node-2'}: median ${med.toFixed(0)} Mbit/s; the 1 s from the rotation (${at.toFixed(1)} s): ${near.map((x) => x.mbps.toFixed(0)).join(' ')}; lowest interval elsewhere ${Math.min(...far).toFixed(0)}`;
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '5'));
  const seconds = Number(arg('seconds', '5'));
  const jsonOut = arg('json', '');
  const labs = ['bench-plain', 'bench-wg'];
  try {
    const bare: Pair = { ...(await createBarePair('cebare-a', 'cebare-b')), name: 'bare veth pair (the limit)' };
    const plain = await acrossNodes('bench-plain', undefined);
    const wg = await acrossNodes('bench-wg', 'wireguard');
    const paths = [bare, plain.path, wg.path];
    const figures = new Map<string, Figures>(paths.map((p) => [p.name, { gbps: [], rrP50us: [], rrP99us: [], pingUs: [] }]));
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`run ${r + 1}/${runs} …\n`);
      for (const p of paths) await measure(p, seconds, figures.get(p.name) as Figures);
    }
    const rotation: string[] = [];
    for (const reverse of [false, true]) rotation.push(await rotationUnderLoad('bench-wg', wg.path.client, wg.path.server, wg.path.serverIp, reverse));
    const rss = await Promise.all(loadLab('bench-wg').nodes.map(async (n) => (await getHealth(n.socket)).memory?.rss ?? 0));
    const plainRss = await Promise.all(loadLab('bench-plain').nodes.map(async (n) => (await getHealth(n.socket)).memory?.rss ?? 0));
    const ref = figures.get(plain.path.name) as Figures;
    const mib = (b: number): string => (b / 1048576).toFixed(1);
    const lines = [
      `Pod to pod across nodes, IPv4, ${runs} runs × ${seconds} s, medians (min–max of throughput); both "nodes" share the machine's CPUs`,
      `data planes: ${plain.dataPlane} (pod MTU ${plain.mtu}), ${wg.dataPlane} (pod MTU ${wg.mtu})`,
      '',
      '| path | TCP Gbit/s | min–max | vs not encrypted | TCP RR p50 µs (RTT/2) | p99 µs | ping RTT µs | CPU cores per Gbit/s |',
      '|---|---|---|---|---|---|---|---|',
      ...paths.map((p) => {
        const f = figures.get(p.name) as Figures;
        return `| ${p.name}${p === wg.path ? ` (${wg.dataPlane})` : ''} | ${median(f.gbps).toFixed(2)} | ${Math.min(...f.gbps).toFixed(2)}–${Math.max(...f.gbps).toFixed(2)} | ${(median(f.gbps) / median(ref.gbps)).toFixed(3)}× | ${median(f.rrP50us).toFixed(1)} | ${median(f.rrP99us).toFixed(1)} | ${median(f.pingUs).toFixed(0)} | ${median(f.coresPerGbps ?? []).toFixed(3)} |`;
      }),
      '',
      `agent RSS with encryption on: ${rss.map(mib).join(', ')} MiB (the unencrypted lab's: ${plainRss.map(mib).join(', ')} MiB)`,
      `wireguard-go RSS: ${wireguardGoRss().join(', ')} MiB`,
      '',
      'Key rotation under a bulk TCP stream (iperf3, 0.1 s intervals, Mbit/s):',
      ...rotation.map((r) => `- ${r}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ figures: Object.fromEntries(figures), rss, plainRss, rotation }, null, 2));
  } finally {
    for (const l of labs) await labDown(l).catch(() => undefined);
    for (const n of ['cebare-a', 'cebare-b']) await deleteNamedNetns(n).catch(() => undefined);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
