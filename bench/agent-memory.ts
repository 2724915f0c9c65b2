/**
 * The agent's resident memory: idle, after a first few pods, and at 100 and 1000 pods.
 *
 *   node build/bench/agent-memory.js [--pods 1000] [--settle 4]  (seconds each phase settles before it is read)
 *
 * RSS read from /proc/PID/status (VmRSS) after each phase settles, with where it sits
 * (/proc/PID/smaps: the node executable's pages, anonymous memory, malloc's heap) and the JS
 * heap from the agent's health. The first pods execute code nothing ran before (pages of the
 * node executable, compiled functions): a one-time cost, so the cost per additional pod is
 * the slope after them. The reference is the same node binary running `node -e` with nothing
 * loaded.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getHealth } from '../src/agent/health-client.js';
import { createPodNetns, podConf, sandboxNetwork, sandboxRuntime, startSandbox, stopSandbox } from '../src/lab/sandbox.js';
import { CLI, PLUGIN_BINARY } from '../test/helpers/env.js';
import { arg } from './common.js';

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resident MiB by mapping: the node executable, anonymous memory (V8's heap among it), malloc's [heap]. */
function where(pid: number): { binary: number; anon: number; malloc: number } {
  const out = { binary: 0, anon: 0, malloc: 0 };
  let kind: keyof typeof out | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1] ?? '';
      kind = name === '' ? 'anon' : name === '[heap]' ? 'malloc' : name === process.execPath ? 'binary' : undefined;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r && kind) out[kind] += Number(r[1]) / 1024;
  }
  return out;
}

const settle = (ms = Number(arg('settle', '4')) * 1000): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Phase {
  label: string;
  pods: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  map: ReturnType<typeof where>;
}

async function main(): Promise<void> {
  const most = Number(arg('pods', '1000'));
  const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const sb = await startSandbox({ prefix: 'mem', podCidrs: ['10.241.0.0/16', 'fd00:241::/64'], cliEntry: CLI, pluginBinary: PLUGIN_BINARY });
  try {
    const pid = sb.agent?.pid;
    if (pid === undefined) throw new Error('no agent pid');
    const phases: Phase[] = [];
    const measure = async (label: string, pods: number): Promise<void> => {
      await settle();
      const h = (await getHealth(sb.socket)).memory;
      phases.push({ label, pods, rss: rssMiB(pid), heapUsed: h.heapUsed / 2 ** 20, heapTotal: h.heapTotal / 2 ** 20, map: where(pid) });
    };
    await measure('idle', 0);
    const list = await sandboxNetwork(sb);
    const rt = sandboxRuntime(sb);
    let n = 0;
    for (const target of [10, 100, 1000, most].filter((x, i, a) => x <= most && a.indexOf(x) === i)) {
      for (; n < target; n++) await rt.add(list, podConf(`m${n}`, await createPodNetns(sb, `m${n}`)));
      await measure(`${target} pods attached`, target);
    }
    const bare = rssMiB(bareNode.pid as number);
    const f = (x: number): string => x.toFixed(1);
    const slope = (a: Phase | undefined, b: Phase | undefined, key: 'rss' | 'heapUsed'): string => (a && b && b.pods > a.pods ? `${f(((b[key] - a[key]) * 1024) / (b.pods - a.pods))}` : '—');
    const at = (pods: number): Phase | undefined => phases.find((p) => p.pods === pods);
    process.stdout.write(
      [
        'Agent resident memory (VmRSS), dual-stack node, MiB',
        '',
        '| state | RSS | node executable | anonymous | malloc heap | JS heap used | JS heap total |',
        '|---|---|---|---|---|---|---|',
        `| bare \`node\` process, nothing loaded (reference) | ${f(bare)} | — | — | — | — | — |`,
        ...phases.map((p) => `| weft agent, ${p.label} | ${f(p.rss)} | ${f(p.map.binary)} | ${f(p.map.anon)} | ${f(p.map.malloc)} | ${f(p.heapUsed)} | ${f(p.heapTotal)} |`),
        '',
        `per additional pod, KiB (RSS; JS heap used): 10 → 100 pods ${slope(at(10), at(100), 'rss')}; ${slope(at(10), at(100), 'heapUsed')} — 100 → 1000 pods ${slope(at(100), at(1000), 'rss')}; ${slope(at(100), at(1000), 'heapUsed')} — idle → 100 pods ${slope(at(0), at(100), 'rss')}`,
      ].join('\n') + '\n',
    );
  } finally {
    bareNode.kill();
    await stopSandbox(sb);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
