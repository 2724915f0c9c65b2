/**
 * Runs NftRunner scenarios in the netns it was started in (a throwaway netns: never the
 * machine's own) and prints a JSON report.
 *   nsenter --net=NS node nft-worker.js process|helper|helper-faults
 * process, helper: the contract's scenarios with that runner.
 * helper-faults: the helper killed between scripts is replaced; a NUL byte is refused; the
 * start-up probe says whether it runs.
 */
import { exerciseNftRunner } from '../../src/kernel/nft-runner.contract.js';
import { findNftHelper, NftHelper } from '../../src/kernel/nft-helper.js';
import { NftError, nftListTable, nftProcessRunner } from '../../src/kernel/nft.js';

const which = process.argv[2];
const helperPath = findNftHelper();
if (which !== 'process' && !helperPath) throw new Error('dist/weft-nft is not built');

async function faults(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const helper = new NftHelper(helperPath as string, nftProcessRunner, 10_000);
  out['probe'] = await helper.works();
  await helper.apply('add table inet weft_faults\n');
  const first = helper.pid;
  process.kill(first as number, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  await helper.apply('add chain inet weft_faults after_kill\n');
  out['replaced'] = helper.pid !== undefined && helper.pid !== first;
  out['appliedAfterKill'] = JSON.stringify(await nftListTable('inet', 'weft_faults')).includes('after_kill');
  try {
    await helper.apply('add chain inet weft_faults x\u0000\nadd chain inet weft_faults y\n');
    out['nul'] = 'applied';
  } catch (err) {
    out['nul'] = err instanceof NftError ? err.message : `not an NftError: ${String(err)}`;
  }
  out['nothingFromNul'] = !JSON.stringify(await nftListTable('inet', 'weft_faults')).includes('"y"');
  await helper.close();
  out['closed'] = helper.pid === undefined;
  await helper.apply('delete table inet weft_faults\n');
  out['afterClose'] = helper.pid === undefined && (await nftListTable('inet', 'weft_faults')) === undefined;
  out['missingBinary'] = await new NftHelper('/nonexistent/weft-nft', nftProcessRunner, 2000).works();
  return out;
}

if (which === 'helper-faults') {
  process.stdout.write(JSON.stringify(await faults()) + '\n');
} else {
  const runner = which === 'process' ? nftProcessRunner : new NftHelper(helperPath as string, nftProcessRunner, 30_000);
  process.stdout.write(JSON.stringify(await exerciseNftRunner(runner)) + '\n');
}
