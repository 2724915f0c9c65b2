/**
 * A pod's link batches alone — `ip` processes against the agent's rtnetlink helper — timed in a
 * throwaway node netns (a runner acts on its own netns, so the measuring process runs inside it).
 *
 *   node build/bench/link-batches.js [--rounds 40]
 *
 * Per round and runner, alternating: the node-side batch of a dual-stack attachment (veth pair
 * with its peer in the pod, gateway addresses, host routes), the pod-side batch (up, addresses,
 * default routes), and `link del`. Two passes per runner; medians per pass. Needs root.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ipProcessRunner, type BatchRunner } from '../src/kernel/batch-runner.js';
import { passedFdPath } from '../src/kernel/ip.js';
import { createNamedNetns, deleteNamedNetns, openNetns } from '../src/kernel/netns.js';
import { findNetlinkHelper, NetlinkHelper } from '../src/kernel/netlink-helper.js';
import { hostSetupCommands, podSetupCommands, type AttachmentPlan } from '../src/datapath/plan.js';
import { randomPrefix } from '../src/lab/sandbox.js';
import { arg, median } from './common.js';

async function inside(podNetns: string, rounds: number): Promise<void> {
  const pod = await openNetns(podNetns);
  const helperPath = findNetlinkHelper();
  if (!helperPath) throw new Error('dist/weft-netlink is not built');
  const helper = new NetlinkHelper(helperPath);
  const plan: AttachmentPlan = {
    hostIf: 'weftbench0001',
    ifName: 'eth0',
    netns: podNetns,
    mtu: 1500,
    hostMac: '02:00:00:00:00:01',
    podMac: '02:00:00:00:00:02',
    addresses: [
      { family: 4, address: '10.99.0.5', prefix: 32 },
      { family: 6, address: 'fd00:99::5', prefix: 128 },
    ],
  };
  const rows: string[] = [];
  for (const runner of [ipProcessRunner, helper, ipProcessRunner, helper] as BatchRunner[]) {
    const t = { host: [] as number[], pod: [] as number[], del: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      const a = performance.now();
      await runner.run(hostSetupCommands(plan, passedFdPath(0)), { passed: pod.fd });
      const b = performance.now();
      await runner.run(podSetupCommands(plan), { netns: pod });
      const c = performance.now();
      await runner.run([['link', 'del', 'dev', plan.hostIf]]);
      const d = performance.now();
      t.host.push(b - a);
      t.pod.push(c - b);
      t.del.push(d - c);
    }
    rows.push(`| ${runner.name} | ${median(t.host).toFixed(2)} | ${median(t.pod).toFixed(2)} | ${median(t.del).toFixed(2)} |`);
  }
  await helper.close();
  await pod.close();
  process.stdout.write(
    [`Link batches, ${rounds} rounds per pass, medians in ms (two passes per runner)`, '', '| runner | node side | pod side | link del |', '|---|---|---|---|', ...rows].join('\n') + '\n',
  );
}

async function main(): Promise<void> {
  const rounds = Number(arg('rounds', '40'));
  const at = process.argv.indexOf('--inside');
  if (at >= 0) return inside(process.argv[at + 1] as string, rounds);
  const prefix = randomPrefix('wbl');
  try {
    const node = await createNamedNetns(`${prefix}-node`);
    const pod = await createNamedNetns(`${prefix}-pod`);
    const r = spawnSync('nsenter', [`--net=${node}`, '--', process.execPath, process.argv[1] as string, '--inside', pod, '--rounds', String(rounds)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`the measuring process failed (${String(r.status)})`);
  } finally {
    for (const n of ['pod', 'node']) await deleteNamedNetns(`${prefix}-${n}`).catch(() => undefined);
  }
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
