import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertBatchRunnerContract, type RunnerReport } from '../src/kernel/batch-runner.contract.js';
import { createNamedNetns, deleteNamedNetns } from '../src/kernel/netns.js';
import { randomPrefix } from '../src/lab/sandbox.js';
import { privilegedSkip, ROOT } from './helpers/env.js';

/**
 * The two ways pod links are made — `ip` processes and the agent's rtnetlink helper — give the
 * same kernel state and the same failures for the same batches (the BatchRunner contract), each
 * run in a throwaway node netns of its own.
 */
const skip = privilegedSkip();

describe('BatchRunner contract: ip processes and the rtnetlink helper', { skip }, () => {
  const prefix = randomPrefix('wbr');
  const made: string[] = [];
  const netns = async (name: string): Promise<string> => {
    made.push(`${prefix}-${name}`);
    return createNamedNetns(`${prefix}-${name}`);
  };
  const worker = async (which: string): Promise<unknown> => {
    const node = await netns(`${which}-node`);
    const pod = await netns(`${which}-pod`);
    const r = spawnSync('nsenter', [`--net=${node}`, '--', process.execPath, join(ROOT, 'build', 'test', 'helpers', 'batch-worker.js'), which, pod], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${which}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  let reports: RunnerReport[] = [];
  let stats: { batches: number; fallbacks: number } | undefined;
  before(async () => {
    const viaIp = (await worker('ip')) as { report: RunnerReport };
    const viaHelper = (await worker('netlink')) as { report: RunnerReport; stats: typeof stats };
    reports = [viaIp.report, viaHelper.report];
    stats = viaHelper.stats;
  });
  after(async () => {
    for (const n of made) await deleteNamedNetns(n).catch(() => undefined);
  });

  for (const i of [0, 1]) {
    it(`${['ip processes', 'the rtnetlink helper'][i] ?? ''}: the attachment, its failures, a batch stopping at its first failure, any other line, deletion`, () => {
      const r = reports[i];
      assert.ok(r);
      assertBatchRunnerContract(r);
    });
  }

  it('both leave exactly the same kernel state and report the same failures', () => {
    const [a, b] = reports.map((r) => ({ ...r, runner: undefined }));
    assert.deepEqual(b, a);
  });

  it("the helper ran every line of the attachment itself: only the line outside its subset went to ip", () => {
    assert.deepEqual(stats, { batches: 10, fallbacks: 1 });
  });

  it('the helper pool: replaced when killed, more batches than helpers, stalls, close in flight, unreachable descriptors, the probe', async () => {
    const r = (await worker('netlink-pool')) as Record<string, unknown>;
    assert.equal(r['works'], true);
    assert.equal(r['worksBroken'], false, 'a helper that cannot run is found at start');
    assert.equal(r['afterKill'], 'ok');
    assert.equal(r['respawned'], true);
    assert.equal(r['parallelAdds'], 12, 'every batch ran, also those that waited for a helper');
    assert.ok((r['parallelHelpers'] as number) >= 2 && (r['parallelHelpers'] as number) <= 8, JSON.stringify(r));
    assert.match(String(r['unreachableNetns']), /^not-found: cannot enter netns/);
    assert.match(String(r['unreachablePassed']), /^invalid-netns@0: /);
    assert.ok(['ok', 'other'].includes(String(r['closedInFlight'])), JSON.stringify(r));
    assert.equal(r['afterClose'], 'ok', 'the runner starts anew after close()');
    assert.deepEqual(r['stalled'], ['other', 'other', 'other', 'other', 'other'], 'every batch to a helper that never answers fails');
    assert.equal(r['stalledWithinMs'], true, 'and none waits forever');
    assert.equal(r['stalledHelpersLeft'], true);
  });
});
