/**
 * Runs BatchRunner scenarios in the netns it was started in (a throwaway node netns: never the
 * machine's own) and prints a JSON report.
 *   nsenter --net=NODE node batch-worker.js ip|netlink|netlink-pool POD_NETNS_PATH
 * ip, netlink: the contract's scenarios with that runner, on the batches plan.ts makes.
 * netlink-pool: the helper pool — a killed helper replaced, more batches than helpers, helpers
 * that never answer, close() during a batch, descriptors it cannot open, the start-up probe.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostSetupCommands, podSetupCommands } from '../../src/datapath/plan.js';
import { ipProcessRunner } from '../../src/kernel/batch-runner.js';
import { CONTRACT_ATTACHMENT, exerciseBatchRunner } from '../../src/kernel/batch-runner.contract.js';
import { IpError, passedFdPath } from '../../src/kernel/ip.js';
import type { OpenNetns } from '../../src/kernel/netns.js';
import { findNetlinkHelper, NetlinkHelper } from '../../src/kernel/netlink-helper.js';

const [which, podNetns] = process.argv.slice(2);
const helperPath = findNetlinkHelper();
if (which !== 'ip' && !helperPath) throw new Error('dist/weft-netlink is not built');

const outcome = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof IpError ? `${err.reason}${err.line !== undefined ? `@${err.line}` : ''}: ${err.message}` : `not an IpError: ${String(err)}`;
  }
};

async function pool(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const helper = new NetlinkHelper(helperPath as string);
  out['works'] = await helper.works();
  out['worksBroken'] = await new NetlinkHelper('/bin/false').works();
  // A killed helper is replaced for the next batch.
  await helper.run([['link', 'add', 'name', 'weftrespawn01', 'type', 'veth', 'peer', 'name', 'weftrespawn02']]);
  const [first] = helper.pids;
  process.kill(first as number, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  out['afterKill'] = await outcome(helper.run([['link', 'del', 'dev', 'weftrespawn01']]));
  out['respawned'] = helper.pids[0] !== undefined && helper.pids[0] !== first;
  // More overlapping batches than helpers: every one runs, on at most 8 helpers, some at once.
  const names = Array.from({ length: 12 }, (_, i) => `weftpar${i}`);
  const adds = await Promise.all(names.map((n) => outcome(helper.run([['link', 'add', 'name', n, 'type', 'veth', 'peer', 'name', `${n}p`]]))));
  out['parallelAdds'] = adds.filter((a) => a === 'ok').length;
  out['parallelHelpers'] = helper.pids.length;
  await Promise.all(names.map((n) => helper.run([['link', 'del', 'dev', n]])));
  // Descriptors the helper cannot open: the netns to run in, the peer's netns.
  const noSuchFd = { path: '/run/netns/gone', fd: 987654, own: false, close: () => Promise.resolve() } as OpenNetns;
  out['unreachableNetns'] = await outcome(helper.run([['link', 'set', 'dev', 'eth0', 'up']], { netns: noSuchFd }));
  out['unreachablePassed'] = await outcome(
    helper.run([['link', 'add', 'name', 'weftgone01', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', passedFdPath(0)]], { passed: 987654 }),
  );
  // close() while a batch runs: the batch ends either way, and the runner starts anew after.
  const inFlight = outcome(helper.run([['link', 'add', 'name', 'weftclose01', 'type', 'veth', 'peer', 'name', 'weftclose02']]));
  await helper.close();
  out['closedInFlight'] = (await inFlight).split(':')[0];
  await ipProcessRunner.run([['link', 'del', 'dev', 'weftclose01']]).catch(() => undefined);
  const again = await outcome(helper.run([['link', 'add', 'name', 'weftclose03', 'type', 'veth', 'peer', 'name', 'weftclose04']]));
  out['afterClose'] = again === 'ok' ? await outcome(helper.run([['link', 'del', 'dev', 'weftclose03']])) : again;
  await helper.close();
  // Helpers that never answer: every batch fails within its time, none waits forever.
  const dir = mkdtempSync(join(tmpdir(), 'weft-stall-'));
  try {
    const stall = join(dir, 'stall');
    writeFileSync(stall, '#!/bin/sh\nexec sleep 600\n');
    chmodSync(stall, 0o755);
    const stuck = new NetlinkHelper(stall, 300, 2);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, () => outcome(stuck.run([['link', 'set', 'dev', 'lo', 'up']]))));
    out['stalled'] = results.map((r) => r.split(':')[0]);
    out['stalledWithinMs'] = Date.now() - started < 5000;
    out['stalledHelpersLeft'] = stuck.pids.length <= 2;
    await stuck.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (which === 'netlink-pool') {
  process.stdout.write(JSON.stringify(await pool()) + '\n');
} else {
  const plan = { ...CONTRACT_ATTACHMENT, netns: podNetns as string };
  const batches = { host: hostSetupCommands(plan, passedFdPath(0)).map((c) => [...c]), pod: podSetupCommands(plan).map((c) => [...c]) };
  const helper = which === 'ip' ? undefined : new NetlinkHelper(helperPath as string);
  const report = await exerciseBatchRunner(helper ?? ipProcessRunner, podNetns as string, batches);
  process.stdout.write(JSON.stringify({ report, ...(helper ? { stats: helper.stats } : {}) }) + '\n');
}
