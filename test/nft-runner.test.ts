import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertNftRunnerContract, type NftRunnerReport } from '../src/kernel/nft-runner.contract.js';
import { createNamedNetns, deleteNamedNetns } from '../src/kernel/netns.js';
import { randomPrefix } from '../src/lab/sandbox.js';
import { privilegedSkip, ROOT } from './helpers/env.js';

/**
 * The two ways the policy table reaches the kernel — an `nft -f -` process per script and the
 * agent's libnftables helper — leave the same tables and refuse the same scripts (the NftRunner
 * contract), each run in a throwaway netns of its own.
 */
const skip = privilegedSkip();

describe('NftRunner contract: nft processes and the nftables helper', { skip }, () => {
  const prefix = randomPrefix('wnr');
  const made: string[] = [];
  const worker = async (which: string): Promise<unknown> => {
    const ns = `${prefix}-${which}`;
    made.push(ns);
    const path = await createNamedNetns(ns);
    const r = spawnSync('nsenter', [`--net=${path}`, '--', process.execPath, join(ROOT, 'build', 'test', 'helpers', 'nft-worker.js'), which], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${which}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  let reports: NftRunnerReport[] = [];
  before(async () => {
    reports = [(await worker('process')) as NftRunnerReport, (await worker('helper')) as NftRunnerReport];
  });
  after(async () => {
    for (const n of made) await deleteNamedNetns(n).catch(() => undefined);
  });

  for (const i of [0, 1]) {
    it(`${['nft processes', 'the nftables helper'][i] ?? ''}: tables made and changed, refusals atomic and named, a 2 MiB script, scripts at once, deletion`, () => {
      const r = reports[i];
      assert.ok(r);
      assertNftRunnerContract(r);
    });
  }

  it('both leave exactly the same tables and refuse with the same words', () => {
    const [a, b] = reports.map((r) => r.states);
    assert.deepEqual(b, a);
    assert.deepEqual(reports[1]?.messages, reports[0]?.messages);
  });

  it('the helper: replaced when killed, a NUL byte refused, closed (later scripts by a process), and a helper that cannot run says so at the probe', async () => {
    const f = (await worker('helper-faults')) as Record<string, unknown>;
    assert.equal(f['probe'], true);
    assert.equal(f['replaced'], true);
    assert.equal(f['appliedAfterKill'], true);
    assert.match(String(f['nul']), /NUL/);
    assert.equal(f['nothingFromNul'], true);
    assert.equal(f['closed'], true);
    assert.equal(f['afterClose'], true, 'a script after close() is applied, by a process, and starts no helper');
    assert.equal(f['missingBinary'], false);
  });
});
