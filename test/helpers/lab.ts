import { spawn as spawnAsync, spawnSync } from 'node:child_process';
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

/** Continuous ping from a pod (every `intervalMs`), returning sent/received when it ends. */
export function pingFrom(lab: TestLab, pod: string, target: string, count: number, intervalMs = 10): Promise<{ sent: number; received: number; out: string }> {
  const [ns, n] = pod.split('/');
  const netns = `/run/netns/${lab.state().prefix}.p-${ns}-${n}`;
  return new Promise((resolve) => {
    const child = spawnAsync('nsenter', [`--net=${netns}`, '--', 'ping', '-q', '-i', String(intervalMs / 1000), '-c', String(count), '-W', '1', target]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      resolve({ sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out });
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
