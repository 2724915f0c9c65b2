import { spawn as spawnAsync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { labDown, labUp, type UpOptions } from '../../src/lab/lab.js';
import { labMatrix, labProbe, nsCreate, podCreate, type Family, type PodCreate } from '../../src/lab/lab-pods.js';
import { loadLab, type LabState } from '../../src/lab/lab-state.js';
import type { Protocol } from '../../src/lab/pod-server.js';
import { processStartTime } from '../../src/util/lock-file.js';
import { CLI } from './env.js';

/** A lab for one test: a random name (labs run side by side), always torn down. */
export interface TestLab {
  name: string;
  state(): LabState;
  pod(spec: Omit<PodCreate, 'labels' | 'ports'> & Partial<Pick<PodCreate, 'labels' | 'ports'>>): ReturnType<typeof podCreate>;
  ns(name: string, labels?: Record<string, string>): ReturnType<typeof nsCreate>;
  probe(from: string, to: string, port: number, protocol?: Protocol, family?: Family): ReturnType<typeof labProbe>;
  matrix: (o?: Partial<Parameters<typeof labMatrix>[1]>) => ReturnType<typeof labMatrix>;
  down(): Promise<void>;
}

export async function startLab(o: Omit<UpOptions, 'name' | 'cliEntry'>): Promise<TestLab> {
  const name = `t${randomBytes(3).toString('hex')}`;
  await labUp({ ...o, name, cliEntry: CLI });
  const ref = (s: string): { namespace: string; name: string } => {
    const [namespace, n] = s.split('/');
    return { namespace: namespace ?? '', name: n ?? '' };
  };
  return {
    name,
    state: () => loadLab(name),
    pod: (spec) => podCreate(name, { labels: {}, ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], ...spec }, CLI),
    ns: (n, labels = {}) => nsCreate(name, n, labels),
    probe: (from, to, port, protocol = 'TCP', family = 4) => labProbe(name, ref(from), to, port, protocol, family, 2000),
    matrix: (m = {}) => labMatrix(name, { protocols: ['TCP', 'UDP'], families: [4, 6], timeoutMs: 1500, ...m }),
    down: async () => {
      await labDown(name);
    },
  };
}

/** `ip -json …` in one of the lab's namespaces. */
export function labIp(lab: TestLab, ns: string, args: string[]): Array<Record<string, unknown>> {
  const r = spawnSync('ip', ['-n', `${lab.state().prefix}.${ns}`, '-json', ...args], { encoding: 'utf8' });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<Record<string, unknown>>) : [];
}

export function labFdb(lab: TestLab, node: string): Array<{ mac: string; dst?: string }> {
  const r = spawnSync('ip', ['netns', 'exec', `${lab.state().prefix}.${node}`, 'bridge', '-json', 'fdb', 'show', 'dev', 'weft.vxlan'], { encoding: 'utf8' });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<{ mac: string; dst?: string }>) : [];
}

/** kill -9: SIGKILL and nothing before it (endProcess sends SIGTERM first, which a leaving agent acts on). */
export async function kill9(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  while (processStartTime(pid) !== undefined) await new Promise((r) => setTimeout(r, 10));
}

/**
 * Continuous ping from a pod (every `intervalMs`), returning what it sent and got when it ends:
 * after `count` pings, or when `stop` aborts. Stopped, the last pings may still be on their way
 * — `lost` lists the sequence numbers never answered, so a caller can tell those from a loss.
 */
export function pingFrom(lab: TestLab, pod: string, target: string, count: number, intervalMs = 10, stop?: AbortSignal): Promise<{ sent: number; received: number; lost: number[]; out: string }> {
  const [ns, n] = pod.split('/');
  const netns = `/run/netns/${lab.state().prefix}.p-${ns}-${n}`;
  return new Promise((resolve) => {
    // SIGINT on abort: ping still prints its summary.
    const child = spawnAsync('nsenter', [`--net=${netns}`, '--', 'ping', '-i', String(intervalMs / 1000), '-c', String(count), '-W', '1', target], stop ? { signal: stop, killSignal: 'SIGINT' } : {});
    child.on('error', () => undefined); // the abort, reported as an error event; the exit below reports the counts
    let out = '';
    const answered = new Set<number>();
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const seq = / bytes from .*icmp_seq=(\d+)/.exec(l);
        if (seq) answered.add(Number(seq[1]));
        else out += `${l}\n`;
      }
    });
    // 'close', not 'exit': the summary may still be in the pipe when the process has exited.
    child.on('close', () => {
      out += partial;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      const sent = Number(m?.[1] ?? 0);
      const lost = Array.from({ length: sent }, (_, i) => i + 1).filter((q) => !answered.has(q));
      resolve({ sent, received: Number(m?.[2] ?? 0), lost, out });
    });
  });
}

/** Everything the kernel of a lab node holds that Weft makes, as text (counters left out). */
export function labKernelState(lab: TestLab, node: string): string {
  const ns = `${lab.state().prefix}.${node}`;
  const run = (args: string[]): string => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' }).stdout;
  const permanentNeigh = (fam: string): string =>
    run(['ip', fam, 'neigh', 'show'])
      .split('\n')
      .filter((l) => l.includes('PERMANENT'))
      .join('\n');
  return [
    run(['ip', '-d', 'link', 'show']).replace(/^\s+(RX|TX).*$/gm, ''),
    run(['ip', 'addr', 'show']),
    run(['ip', '-4', 'route', 'show', 'table', 'all']),
    run(['ip', '-6', 'route', 'show', 'table', 'all']),
    permanentNeigh('-4'),
    permanentNeigh('-6'),
    run(['bridge', 'fdb', 'show', 'dev', 'weft.vxlan']),
    run(['nft', '-s', 'list', 'ruleset']),
  ].join('\n----\n');
}

/** A request the lab's Kubernetes API stand-in served (test/helpers/kube-standin-main.ts). */
export interface StandinRequest {
  method: string;
  path: string;
  query: string;
  watch: boolean;
  status: number;
  userAgent: string;
}

function standinPid(lab: TestLab): number {
  const ds = lab.state().datastore;
  if (ds.kind !== 'kubernetes' || !ds.pid) throw new Error(`lab ${lab.name} does not run the Kubernetes API stand-in`);
  return ds.pid;
}

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`the stand-in did not ${what} within 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every request the lab's stand-in has served so far. */
export async function standinRequests(lab: TestLab): Promise<StandinRequest[]> {
  const file = join(lab.state().dir, 'standin-requests.json');
  rmSync(file, { force: true });
  process.kill(standinPid(lab), 'SIGUSR2');
  await until('write its request log', () => existsSync(file));
  return JSON.parse(readFileSync(file, 'utf8')) as StandinRequest[];
}

/** Makes the lab's stand-in misbehave (see kube-standin-main.ts); resolves once it has. */
export async function standinFault(lab: TestLab, fault: { fault: 'dropWatches' | 'compact' | 'pause' | 'resume' | 'holdBookmarks' | 'releaseBookmarks' } | { fault: 'failNext'; count: number; status: 429 | 500 | 503 }): Promise<void> {
  const file = join(lab.state().dir, 'standin-fault.json');
  writeFileSync(file, JSON.stringify(fault));
  process.kill(standinPid(lab), 'SIGUSR1');
  await until(`apply ${fault.fault}`, () => !existsSync(file));
}
