/**
 * The agent's resident memory, idle and with 100 pods attached.
 *
 *   node build/bench/agent-memory.js [--pods 100]
 *
 * RSS read from /proc/PID/status (VmRSS) after each phase settles; the reference is the same
 * node binary running `node -e` with nothing loaded.
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

const settle = (ms = 2000): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const pods = Number(arg('pods', '100'));
  const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const sb = await startSandbox({ prefix: 'mem', podCidrs: ['10.241.0.0/16', 'fd00:241::/64'], cliEntry: CLI, pluginBinary: PLUGIN_BINARY });
  try {
    const pid = sb.agent?.pid;
    if (pid === undefined) throw new Error('no agent pid');
    await settle();
    const idle = rssMiB(pid);
    const idleHeap = (await getHealth(sb.socket)).memory.heapUsed / 2 ** 20;
    const list = await sandboxNetwork(sb);
    const rt = sandboxRuntime(sb);
    for (let i = 0; i < pods; i++) await rt.add(list, podConf(`m${i}`, await createPodNetns(sb, `m${i}`)));
    await settle();
    const loaded = rssMiB(pid);
    const loadedHeap = (await getHealth(sb.socket)).memory.heapUsed / 2 ** 20;
    const bare = rssMiB(bareNode.pid as number);
    process.stdout.write(
      [
        `Agent resident memory (VmRSS), dual-stack node`,
        '',
        '| state | RSS (MiB) | JS heap in use (MiB) |',
        '|---|---|---|',
        `| bare \`node\` process, nothing loaded (reference) | ${bare.toFixed(1)} | — |`,
        `| weft agent, idle | ${idle.toFixed(1)} | ${idleHeap.toFixed(1)} |`,
        `| weft agent, ${pods} pods attached | ${loaded.toFixed(1)} | ${loadedHeap.toFixed(1)} |`,
        '',
        `per pod: RSS ${(((loaded - idle) * 1024) / pods).toFixed(1)} KiB, heap in use ${(((loadedHeap - idleHeap) * 1024) / pods).toFixed(1)} KiB`,
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
