/**
 * The plugin executable on its own: start-to-exit time and peak RSS of the forwarder
 * (dist/weft-cni), side by side with Debian's Go `ptp` plugin and `/bin/true` (the cost of
 * exec itself) in the same run.
 *
 *   node build/bench/forwarder.js [--runs 300]
 *
 * Time: VERSION, run directly (no nsenter), the three programs interleaved, each call timed
 * from spawn to exit; overhead = forwarder − /bin/true. RSS: GNU time's maximum resident set
 * (%M) of VERSION, and of an ADD and a DEL through a real agent (for the forwarder this is the
 * whole call, waiting for the agent included) next to ptp + host-local doing the same.
 * Needs root (the ADD/DEL part).
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPodNetns, startSandbox, stopSandbox, type Sandbox } from '../src/lab/sandbox.js';
import { CLI, PLUGIN_BINARY } from '../test/helpers/env.js';
import { arg, hostLocal, median, pct } from './common.js';

const PTP = '/usr/lib/cni/ptp';

function timed(file: string, env: Record<string, string>): number {
  const t = performance.now();
  const r = spawnSync(file, [], { env, stdio: ['ignore', 'ignore', 'ignore'] });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${file} exited ${String(r.status)}`);
  return ms;
}

/** Peak RSS in KiB of one run of `file` (GNU time %M), optionally inside a netns. */
function peakRss(file: string, env: Record<string, string>, stdin: string, netns?: string): number {
  const cmd = [...(netns ? ['nsenter', `--net=${netns}`, '--'] : []), '/usr/bin/time', '-f', 'RSS %M', file];
  const r = spawnSync(cmd[0] as string, cmd.slice(1), { env, input: stdin, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${env['CNI_COMMAND'] ?? ''} exited ${String(r.status)}: ${r.stdout} ${r.stderr}`);
  const m = /RSS (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no RSS from GNU time: ${r.stderr}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '300'));
  let sb: Sandbox | undefined;
  try {
    const version = { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' };
    const series = new Map<string, number[]>([
      ['weft-cni (the forwarder)', []],
      ['reference ptp (Go)', []],
      ['/bin/true', []],
    ]);
    const files: Array<[string, string]> = [
      ['weft-cni (the forwarder)', PLUGIN_BINARY],
      ['reference ptp (Go)', PTP],
      ['/bin/true', '/bin/true'],
    ];
    for (let i = 0; i < 20; i++) for (const [, f] of files) timed(f, version);
    for (let i = 0; i < runs; i++) for (const [name, f] of files) series.get(name)?.push(timed(f, version));

    sb = await startSandbox({ prefix: 'wbf', podCidrs: ['10.239.0.0/16'], cliEntry: CLI, pluginBinary: PLUGIN_BINARY });
    const list = JSON.parse(await fs.readFile(join(sb.confDir, '10-weft.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
    const weftConf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
    const ptpConf = JSON.stringify({ cniVersion: '1.0.0', name: 'b-ptp', type: 'ptp', mtu: 1500, ipam: hostLocal(sb, ['10.238.0.0/16']) });
    const rss = new Map<string, number[]>();
    const add = (k: string, v: number): void => void rss.set(k, [...(rss.get(k) ?? []), v]);
    for (let i = 0; i < 10; i++) {
      add('VERSION weft-cni', peakRss(PLUGIN_BINARY, version, ''));
      add('VERSION ptp', peakRss(PTP, version, ''));
      for (const [who, file, conf] of [['weft-cni', join(sb.binDir, 'weft'), weftConf], ['ptp', PTP, ptpConf]] as const) {
        const id = `rss${who.replace(/-/g, '')}${i}`;
        const netns = await createPodNetns(sb, id);
        const env = { CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
        add(`ADD ${who}`, peakRss(file, { ...env, CNI_COMMAND: 'ADD' }, conf, sb.nodeNetnsPath));
        add(`DEL ${who}`, peakRss(file, { ...env, CNI_COMMAND: 'DEL' }, conf, sb.nodeNetnsPath));
      }
    }

    const t = (name: string): number[] => series.get(name) ?? [];
    const floor = median(t('/bin/true'));
    const lines = [
      `VERSION, start to exit, ${runs} runs each (interleaved), milliseconds`,
      '',
      '| program | median | p90 | median − /bin/true |',
      '|---|---|---|---|',
      ...files.map(([name]) => `| ${name} | ${median(t(name)).toFixed(2)} | ${pct(t(name), 90).toFixed(2)} | ${(median(t(name)) - floor).toFixed(2)} |`),
      '',
      'Peak RSS (GNU time %M), KiB, median of 10 calls',
      '',
      '| call | weft-cni | reference ptp (+ host-local for ADD/DEL) |',
      '|---|---|---|',
      ...['VERSION', 'ADD', 'DEL'].map((c) => `| ${c} | ${median(rss.get(`${c} weft-cni`) ?? [])} | ${median(rss.get(`${c} ptp`) ?? [])} |`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    if (sb) await stopSandbox(sb);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
