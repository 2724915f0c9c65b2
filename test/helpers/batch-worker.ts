/**
 * Runs the BatchRunner contract's scenarios with one runner, in the netns it was started in (a
 * throwaway node netns: never the machine's own), and prints the report as JSON.
 *   nsenter --net=NODE node batch-worker.js ip|netlink POD_NETNS_PATH
 * With "netlink-respawn": kills the helper between batches (the next batch must start a new
 * one), then runs overlapping batches (they must get helpers of their own).
 */
import { ipProcessRunner } from '../../src/kernel/batch-runner.js';
import { exerciseBatchRunner } from '../../src/kernel/batch-runner.contract.js';
import { findNetlinkHelper, NetlinkHelper } from '../../src/kernel/netlink-helper.js';

const [which, podNetns] = process.argv.slice(2);
const helperPath = findNetlinkHelper();
if (which !== 'ip' && !helperPath) throw new Error('dist/weft-netlink is not built');
if (which === 'netlink-respawn') {
  const helper = new NetlinkHelper(helperPath as string);
  await helper.run([['link', 'add', 'name', 'weftrespawn01', 'type', 'veth', 'peer', 'name', 'weftrespawn02']]);
  const [first] = helper.pids;
  process.kill(first as number, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  await helper.run([['link', 'del', 'dev', 'weftrespawn01']]);
  const second = helper.pids[0];
  // Overlapping batches run in helpers of their own (up to the cap), not one behind another.
  const names = Array.from({ length: 6 }, (_, i) => `weftpar${i}`);
  await Promise.all(names.map((n) => helper.run([['link', 'add', 'name', n, 'type', 'veth', 'peer', 'name', `${n}p`]])));
  const parallel = helper.pids.length;
  await Promise.all(names.map((n) => helper.run([['link', 'del', 'dev', n]])));
  process.stdout.write(JSON.stringify({ first, second, parallel }) + '\n');
  await helper.close();
} else {
  const helper = which === 'ip' ? undefined : new NetlinkHelper(helperPath as string);
  const report = await exerciseBatchRunner(helper ?? ipProcessRunner, podNetns as string);
  process.stdout.write(JSON.stringify({ report, ...(helper ? { stats: helper.stats } : {}) }) + '\n');
}
