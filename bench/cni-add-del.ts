/**
 * ADD and DEL latency, Weft vs Debian's reference plugins, measured side by side in one run.
 *
 *   node build/bench/cni-add-del.js [--pods 50] [--rounds 3] [--json FILE]
 *
 * Each network gets its own node netns; every plugin runs inside it through the same CNI runtime
 * (so the same exec + nsenter overhead), one pod netns per container. For each round and
 * network: N sequential ADDs then N sequential DELs, and C concurrent ADDs then C concurrent
 * DELs (each call timed on its own); reported as median / p90 / max over all rounds. Pod netns
 * creation is not timed. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NetworkConfigList } from '../src/cniruntime/conflist.js';
import { CniRuntime } from '../src/cniruntime/runtime.js';
import { deleteNamedNetns } from '../src/kernel/netns.js';
import { createPodNetns, podConf, sandboxNetwork, sandboxRuntime, startSandbox, stopSandbox, type Sandbox } from '../src/lab/sandbox.js';
import { CLI, execPlugin, PLUGIN_BINARY } from '../test/helpers/env.js';
import { arg, hostLocal, median, pct, referenceList } from './common.js';

interface Series {
  add: number[];
  del: number[];
}



async function timeRuns(rt: CniRuntime, list: NetworkConfigList, sb: Sandbox, tag: string, pods: number, series: Series): Promise<void> {
  const names = Array.from({ length: pods }, (_, i) => `${tag}${i}`);
  const netns: string[] = [];
  for (const n of names) netns.push(await createPodNetns(sb, n));
  for (let i = 0; i < pods; i++) {
    const t = performance.now();
    await rt.add(list, podConf(`${tag}-${i}`, netns[i] as string));
    series.add.push(performance.now() - t);
  }
  for (let i = 0; i < pods; i++) {
    const t = performance.now();
    await rt.del(list, podConf(`${tag}-${i}`, netns[i] as string));
    series.del.push(performance.now() - t);
  }
  for (const n of names) {
    await deleteNamedNetns(`${sb.prefix}-${n}`);
    sb.pods.delete(`${sb.prefix}-${n}`);
  }
}

/** C calls at once, each timed from its own start to its own end. */
async function timeConcurrent(rt: CniRuntime, list: NetworkConfigList, sb: Sandbox, tag: string, n: number, series: Series): Promise<void> {
  const names = Array.from({ length: n }, (_, i) => `${tag}${i}`);
  const netns = await Promise.all(names.map((nm) => createPodNetns(sb, nm)));
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  series.add.push(...(await Promise.all(names.map((_, i) => timed(() => rt.add(list, podConf(`${tag}-${i}`, netns[i] as string)))))));
  series.del.push(...(await Promise.all(names.map((_, i) => timed(() => rt.del(list, podConf(`${tag}-${i}`, netns[i] as string)))))));
  for (const nm of names) {
    await deleteNamedNetns(`${sb.prefix}-${nm}`);
    sb.pods.delete(`${sb.prefix}-${nm}`);
  }
}


interface Network {
  name: string;
  pods: number;
  run: (tag: string, pods: number, series: Series) => Promise<void>;
  concurrent?: (tag: string, n: number, series: Series) => Promise<void>;
}

async function main(): Promise<void> {
  const pods = Number(arg('pods', '50'));
  const rounds = Number(arg('rounds', '3'));
  const ptpDualPods = Number(arg('ptp-dual-pods', '10'));
  const concurrency = Number(arg('concurrent', '20'));
  const jsonOut = arg('json', '');
  const sandboxes: Sandbox[] = [];
  const start = async (prefix: string, podCidrs: string[], debug = false, extraArgs: string[] = []): Promise<Sandbox> => {
    const agentArgs = [...(debug ? ['--log-level', 'debug'] : []), ...extraArgs];
    const sb = await startSandbox({ prefix, podCidrs, cliEntry: CLI, pluginBinary: PLUGIN_BINARY, ...(agentArgs.length ? { agentArgs } : {}) });
    sandboxes.push(sb);
    return sb;
  };
  try {
    const weft4 = await start('wb4', ['10.248.0.0/16'], true);
    // The same agent making pod links with `ip` processes instead of its rtnetlink helper.
    const weftIp = await start('wbip', ['10.249.0.0/16'], false, ['--no-netlink-helper']);
    const weft46 = await start('wb46', ['10.247.0.0/16', 'fd00:247::/64']);
    const ref = await start('rb', ['10.246.0.0/16']);
    const refRt = new CniRuntime({ path: ['/usr/lib/cni'], cacheDir: ref.cacheDir, netns: ref.nodeNetnsPath });
    const v4 = (x: number): Record<string, unknown> => hostLocal(ref, [`10.${x}.0.0/16`]);
    const dual = (x: number): Record<string, unknown> => hostLocal(ref, [`10.${x}.0.0/16`, `fd00:${x}::/64`]);
    const ptp4 = await referenceList(ref, 'b-ptp4', { type: 'ptp', mtu: 1500, ipam: v4(240) });
    const ptp46 = await referenceList(ref, 'b-ptp46', { type: 'ptp', mtu: 1500, ipam: dual(241) });
    const br4 = await referenceList(ref, 'b-br4', { type: 'bridge', bridge: 'wbbr4', isGateway: true, ipam: v4(242) });
    const br46 = await referenceList(ref, 'b-br46', { type: 'bridge', bridge: 'wbbr46', isGateway: true, ipam: dual(243) });
    const weftNet = async (name: string, sb: Sandbox, n: number): Promise<Network> => {
      const list = await sandboxNetwork(sb);
      const rt = sandboxRuntime(sb);
      return { name, pods: n, run: (tag, k, series) => timeRuns(rt, list, sb, tag, k, series), concurrent: (tag, k, series) => timeConcurrent(rt, list, sb, tag, k, series) };
    };
    const refNet = (name: string, list: NetworkConfigList, n: number, concurrent = true): Network => ({
      name,
      pods: n,
      run: (tag, k, series) => timeRuns(refRt, list, ref, tag, k, series),
      ...(concurrent ? { concurrent: (tag: string, k: number, series: Series) => timeConcurrent(refRt, list, ref, tag, k, series) } : {}),
    });
    const networks: Network[] = [
      await weftNet('weft, IPv4', weft4, pods),
      await weftNet('weft, IPv4, ip processes (--no-netlink-helper)', weftIp, pods),
      refNet('reference ptp + host-local, IPv4', ptp4, pods),
      refNet('reference bridge + host-local, IPv4', br4, pods),
      await weftNet('weft, dual-stack', weft46, pods),
      refNet('reference bridge + host-local, dual-stack', br46, pods),
      refNet('reference ptp + host-local, dual-stack', ptp46, ptpDualPods, false),
    ];
    const results = new Map<string, Series>(networks.map((n) => [n.name, { add: [], del: [] }]));
    const concurrentResults = new Map<string, Series>(networks.filter((n) => n.concurrent).map((n) => [n.name, { add: [], del: [] }]));
    for (const [i, n] of networks.entries()) await n.run(`warm${i}x`, 3, { add: [], del: [] });
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`round ${r + 1}/${rounds} …\n`);
      for (const [i, n] of networks.entries()) await n.run(`r${r}n${i}x`, n.pods, results.get(n.name) as Series);
      for (const [i, n] of networks.entries()) await n.concurrent?.(`c${r}n${i}x`, concurrency, concurrentResults.get(n.name) as Series);
    }

    // Where Weft's time goes: the plugin process alone (VERSION: the forwarder starts, answers,
    // exits), and the agent's own handling of each request (its debug log). `node -e 0` is what a
    // JavaScript plugin would pay before doing anything.
    const startup: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      await execPlugin(join(weft4.binDir, 'weft'), { CNI_COMMAND: 'VERSION' }, undefined, { netns: weft4.nodeNetnsPath });
      startup.push(performance.now() - t);
    }
    const log = await fs.readFile(weft4.agentLog, 'utf8');
    const agentMs: Series = { add: [], del: [] };
    for (const line of log.split('\n')) {
      if (!line.includes('"msg":"request"')) continue;
      const j = JSON.parse(line) as { command: string; ms: number };
      if (j.command === 'ADD') agentMs.add.push(j.ms);
      if (j.command === 'DEL') agentMs.del.push(j.ms);
    }
    const nodeE0 = median(
      Array.from({ length: 15 }, () => {
        const t = performance.now();
        execFileSync(process.execPath, ['-e', '0'], { env: { PATH: process.env['PATH'] ?? '' } });
        return performance.now() - t;
      }),
    );

    const get = (name: string): Series => results.get(name) ?? { add: [], del: [] };
    const cell = (xs: number[]): string => `${median(xs).toFixed(1)} | ${pct(xs, 90).toFixed(1)} | ${Math.max(...xs).toFixed(1)}`;
    const ratio = (a: string, b: string, k: keyof Series): string => (median(get(a)[k]) / median(get(b)[k])).toFixed(2);
    const lines = [
      `ADD and DEL latency per pod, ${pods} sequential pods × ${rounds} rounds (ptp dual-stack: ${ptpDualPods} pods), milliseconds`,
      '',
      '| network | ADD median | p90 | max | DEL median | p90 | max |',
      '|---|---|---|---|---|---|---|',
      ...networks.map((n) => `| ${n.name} | ${cell(get(n.name).add)} | ${cell(get(n.name).del)} |`),
      '',
      `${concurrency} concurrent pods × ${rounds} rounds (each call timed on its own), milliseconds`,
      '',
      '| network | ADD median | p90 | max | DEL median | p90 | max |',
      '|---|---|---|---|---|---|---|',
      ...[...concurrentResults].map(([name, xs]) => `| ${name} | ${cell(xs.add)} | ${cell(xs.del)} |`),
      '',
      `weft / ptp (IPv4): ADD ${ratio('weft, IPv4', 'reference ptp + host-local, IPv4', 'add')}×, DEL ${ratio('weft, IPv4', 'reference ptp + host-local, IPv4', 'del')}×`,
      `weft / bridge (IPv4): ADD ${ratio('weft, IPv4', 'reference bridge + host-local, IPv4', 'add')}×, DEL ${ratio('weft, IPv4', 'reference bridge + host-local, IPv4', 'del')}×`,
      `weft / bridge (dual-stack): ADD ${ratio('weft, dual-stack', 'reference bridge + host-local, dual-stack', 'add')}×, DEL ${ratio('weft, dual-stack', 'reference bridge + host-local, dual-stack', 'del')}×`,
      '',
      "Where weft's time goes (IPv4 node, medians, ms):",
      `- the plugin process alone (VERSION, via nsenter): ${median(startup).toFixed(1)}; \`node -e 0\`: ${nodeE0.toFixed(1)}`,
      `- the agent handling ADD: ${median(agentMs.add).toFixed(1)}, DEL: ${median(agentMs.del).toFixed(1)}`,
      `- so the plugin's process start-up is ${((100 * median(startup)) / median(get('weft, IPv4').add)).toFixed(0)}% of a sequential ADD and ${((100 * median(startup)) / median(get('weft, IPv4').del)).toFixed(0)}% of a DEL`,
      `- concurrent ratios (medians): weft / ptp IPv4 ADD ${(median(concurrentResults.get('weft, IPv4')?.add ?? []) / median(concurrentResults.get('reference ptp + host-local, IPv4')?.add ?? [])).toFixed(2)}×, weft / bridge IPv4 ADD ${(median(concurrentResults.get('weft, IPv4')?.add ?? []) / median(concurrentResults.get('reference bridge + host-local, IPv4')?.add ?? [])).toFixed(2)}×`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ pods, rounds, concurrency, results: Object.fromEntries(results), concurrent: Object.fromEntries(concurrentResults), startup, agentMs, nodeE0 }, null, 2));
  } finally {
    for (const sb of sandboxes) await stopSandbox(sb);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
