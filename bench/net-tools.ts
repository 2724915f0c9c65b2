import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Measuring a path between two namespaces: TCP throughput (iperf3, first second omitted), TCP
 * request/response (sockperf ping-pong; its "latency" is RTT/2) and ICMP RTT (ping).
 */
export interface Pair {
  name: string;
  client: string; // netns name
  server: string; // netns name
  serverIp: string;
}

export interface Figures {
  gbps: number[];
  rrP50us: number[];
  rrP99us: number[];
  pingUs: number[];
  /** CPU cores busy (the whole machine, from /proc/stat) per Gbit/s during the iperf3 run. */
  coresPerGbps?: number[];
}

/** Busy and total jiffies of the whole machine (/proc/stat's first line). */
function cpuJiffies(): { busy: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

function inNs(ns: string, cmd: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function withServer<T>(ns: string, cmd: string[], fn: () => T): Promise<T> {
  const server = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 400));
  try {
    return fn();
  } finally {
    server.kill('SIGKILL'); // ends `ip netns exec`'s child too: it execs the tool
    await new Promise((r) => server.once('exit', r));
  }
}

export async function measure(p: Pair, seconds: number, f: Figures): Promise<void> {
  let cpu0 = cpuJiffies();
  const iperf = await withServer(p.server, ['iperf3', '-s', '-1', '-B', p.serverIp], () => {
    cpu0 = cpuJiffies();
    return inNs(p.client, ['iperf3', '-c', p.serverIp, '-t', String(seconds), '-O', '1', '-J']);
  });
  const cpu1 = cpuJiffies();
  if (iperf.status !== 0) throw new Error(`${p.name}: iperf3 failed: ${iperf.stderr || iperf.stdout.slice(0, 300)}`);
  const gbps = (JSON.parse(iperf.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  f.gbps.push(gbps);
  // Busy share of all CPUs, in cores: (busy / total jiffies) × CPUs.
  const cores = ((cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total)) * cpus().length;
  (f.coresPerGbps ??= []).push(cores / gbps);

  const rr = await withServer(p.server, ['sockperf', 'sr', '--tcp', '-i', p.serverIp, '-p', '11111'], () =>
    inNs(p.client, ['sockperf', 'pp', '--tcp', '-i', p.serverIp, '-p', '11111', '-t', String(seconds)]),
  );
  const out = rr.stdout + rr.stderr;
  const p50 = /percentile 50\.000 =\s+([\d.]+)/.exec(out);
  const p99 = /percentile 99\.000 =\s+([\d.]+)/.exec(out);
  if (!p50 || !p99) throw new Error(`${p.name}: sockperf gave no percentiles: ${out.slice(0, 400)}`);
  f.rrP50us.push(Number(p50[1]));
  f.rrP99us.push(Number(p99[1]));

  const ping = inNs(p.client, ['ping', '-q', '-c', '200', '-i', '0.005', p.serverIp]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout);
  if (!m) throw new Error(`${p.name}: ping failed: ${ping.stdout}`);
  f.pingUs.push(Number(m[1]) * 1000);
}


/** The physical limit of this machine: two namespaces joined by one veth pair (10.99.0.1 ↔ .2). */
export async function createBarePair(a: string, b: string): Promise<Pair> {
  const { createNamedNetns } = await import('../src/kernel/netns.js');
  await createNamedNetns(a);
  await createNamedNetns(b);
  spawnSync('ip', ['-n', a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b]);
  spawnSync('ip', ['-n', a, '-batch', '-'], { input: 'addr add 10.99.0.1/24 dev va\nlink set va up\nlink set lo up\n' });
  spawnSync('ip', ['-n', b, '-batch', '-'], { input: 'addr add 10.99.0.2/24 dev vb\nlink set vb up\nlink set lo up\n' });
  return { name: 'bare veth pair (the limit)', client: a, server: b, serverIp: '10.99.0.2' };
}
