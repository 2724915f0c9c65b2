/**
 * What flow recording costs the data path: pod to pod across nodes in two 2-node labs, one with
 * flow recording on (the default) and one with `--flows off`, in one run, runs alternating:
 * TCP throughput and request/response (an established connection: one extra rule evaluation
 * per packet), and new TCP connections per second (each one a record on both nodes: the
 * kernel's NFLOG message, the reader, the agent's decoding). Both labs enforce the same
 * NetworkPolicy (the far pod isolated, the client allowed), so the policy path is the same.
 *
 *   node build/bench/flows.js [--runs 5] [--seconds 5] [--json FILE]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { getHealth } from '../src/agent/health-client.js';
import { labDown, labUp } from '../src/lab/lab.js';
import { nsCreate, podCreate } from '../src/lab/lab-pods.js';
import { loadLab } from '../src/lab/lab-state.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median } from './common.js';
import { measure, type Figures, type Pair } from './net-tools.js';

const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: far-from-a, namespace: b}
spec:
  podSelector: {matchLabels: {app: far}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
`;

async function lab(name: string, flows: boolean): Promise<Pair> {
  await labDown(name).catch(() => undefined);
  await labUp({ name, nodes: 2, backend: 'vxlan', datastore: 'file', cliEntry: CLI, ...(flows ? {} : { extraAgentArgs: ['--flows', 'off'] }) });
  await nsCreate(name, 'b', {});
  const ports = [{ port: 80, protocol: 'TCP' as const }];
  const a = await podCreate(name, { namespace: 'b', name: 'a', node: 'node-1', labels: { app: 'a' }, ports }, CLI);
  const far = await podCreate(name, { namespace: 'b', name: 'far', node: 'node-2', labels: { app: 'far' }, ports }, CLI);
  const file = `/tmp/weft-bench-flows-${process.pid}.yaml`;
  writeFileSync(file, POLICY);
  const r = spawnSync(process.execPath, [CLI, 'apply', '-f', file, '--lab', name], { encoding: 'utf8' });
  spawnSync('rm', ['-f', file]);
  if (r.status !== 0) throw new Error(`apply in ${name}: ${r.stderr}`);
  return { name: flows ? 'flow recording on' : 'flow recording off', client: a.netns, server: far.netns, serverIp: far.addresses[0] as string };
}

/** CPU seconds used so far by a lab's agents and their helpers (the NFLOG reader among them), from /proc. */
function agentsCpuSeconds(lab: string): number {
  const ticks = (pid: number): number => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      return Number(rest[11]) + Number(rest[12]); // utime, stime
    } catch {
      return 0;
    }
  };
  let total = 0;
  for (const n of loadLab(lab).nodes) {
    if (!n.agentPid) continue;
    const children = readFileSync(`/proc/${n.agentPid}/task/${n.agentPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    total += ticks(n.agentPid) + children.reduce((a, c) => a + ticks(c), 0);
  }
  return total / 100; // USER_HZ
}

/** One metric's value, from the agent socket's GET /metrics. */
function metricOnSocket(socket: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? Number.NaN)));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Sequential TCP connections (connect, read the answer, reset) for `seconds`: how many per
 * second. Reset, not closed: tens of thousands of closes would leave as many TIME_WAIT tuples,
 * and the next run would find the ports taken (measured: ~500/s instead of ~4,000/s).
 */
function connectionsPerSecond(p: Pair, seconds: number): number {
  const script = `
    const net = require('node:net');
    const [ip, secs] = [process.argv[1], Number(process.argv[2])];
    const end = Date.now() + secs * 1000; let n = 0, failed = 0;
    const one = () => { if (Date.now() >= end) { console.log(n / secs); if (failed) console.error(failed + ' connections failed'); return; }
      const s = net.connect(80, ip); let answered = false;
      s.once('data', () => { answered = true; n++; s.on('error', () => {}); s.resetAndDestroy(); one(); });
      s.once('error', () => { if (answered) return; failed++; s.destroy(); one(); }); };
    one();`;
  const r = spawnSync('ip', ['netns', 'exec', p.client, process.execPath, '-e', script, p.serverIp, String(seconds)], { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (r.status !== 0) throw new Error(`${p.name}: connection loop failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '5'));
  const seconds = Number(arg('seconds', '5'));
  const jsonOut = arg('json', '');
  const names = ['bench-flows-on', 'bench-flows-off'];
  try {
    const on = await lab(names[0] as string, true);
    const off = await lab(names[1] as string, false);
    const paths = [off, on];
    const figures = new Map<string, Figures & { cps: number[]; cpuMsPer1000: number[] }>(paths.map((p) => [p.name, { gbps: [], rrP50us: [], rrP99us: [], pingUs: [], cps: [], cpuMsPer1000: [] }]));
    const labOf = (p: Pair): string => (p === on ? (names[0] as string) : (names[1] as string));
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`run ${r + 1}/${runs} …\n`);
      // Alternate which goes first, so drift hits both alike.
      for (const p of r % 2 === 0 ? paths : [...paths].reverse()) {
        const f = figures.get(p.name) as Figures & { cps: number[]; cpuMsPer1000: number[] };
        await measure(p, seconds, f);
        const cpu0 = agentsCpuSeconds(labOf(p));
        const cps = connectionsPerSecond(p, seconds);
        f.cps.push(cps);
        // The agents' own CPU (both nodes, helpers included) per 1,000 connections made.
        f.cpuMsPer1000.push(((agentsCpuSeconds(labOf(p)) - cpu0) * 1000) / ((cps * seconds) / 1000));
      }
    }
    const flows = await Promise.all(loadLab(names[0] as string).nodes.map(async (n) => (await getHealth(n.socket)).flows));
    const unrecorded = await Promise.all(loadLab(names[0] as string).nodes.map((n) => metricOnSocket(n.socket, 'weft_flows_unrecorded_total')));
    const rss = async (l: string): Promise<string> => (await Promise.all(loadLab(l).nodes.map(async (n) => ((await getHealth(n.socket)).memory?.rss ?? 0) / 1048576))).map((x) => x.toFixed(1)).join(', ');
    const f = (p: Pair): Figures & { cps: number[]; cpuMsPer1000: number[] } => figures.get(p.name) as Figures & { cps: number[]; cpuMsPer1000: number[] };
    const ratio = (a: number[], b: number[]): string => (median(a) / median(b)).toFixed(3);
    const lines = [
      `Pod to pod across nodes (VXLAN, NetworkPolicy enforced), IPv4, ${runs} runs × ${seconds} s each, medians (min–max)`,
      '',
      '| flow recording | TCP Gbit/s | min–max | TCP RR p50 µs | p99 µs | new TCP connections/s | min–max | CPU cores per Gbit/s | agents\' CPU ms per 1,000 connections |',
      '|---|---|---|---|---|---|---|---|---|',
      ...paths.map((p) => {
        const x = f(p);
        return `| ${p === on ? 'on' : 'off'} | ${median(x.gbps).toFixed(2)} | ${Math.min(...x.gbps).toFixed(2)}–${Math.max(...x.gbps).toFixed(2)} | ${median(x.rrP50us).toFixed(1)} | ${median(x.rrP99us).toFixed(1)} | ${median(x.cps).toFixed(0)} | ${Math.min(...x.cps).toFixed(0)}–${Math.max(...x.cps).toFixed(0)} | ${median(x.coresPerGbps ?? []).toFixed(3)} | ${median(x.cpuMsPer1000).toFixed(1)} |`;
      }),
      '',
      `on ÷ off: throughput ${ratio(f(on).gbps, f(off).gbps)}×, RR p50 ${ratio(f(on).rrP50us, f(off).rrP50us)}× (lower is better), connections/s ${ratio(f(on).cps, f(off).cps)}×`,
      `records made with recording on (node-1, node-2): ${flows.map((x) => x?.seen ?? 0).join(', ')}; kernel messages lost: ${flows.map((x) => x?.kernelLost ?? 0).join(', ')}; ring overwrites: ${flows.map((x) => x?.overwritten ?? 0).join(', ')}; new connections past the record limit: ${unrecorded.join(', ')}`,
      `agent RSS after the runs (MiB): on ${await rss(names[0] as string)}; off ${await rss(names[1] as string)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ figures: Object.fromEntries(figures), flows }, null, 2));
  } finally {
    for (const l of names) await labDown(l).catch(() => undefined);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
