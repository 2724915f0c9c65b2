import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from './log.js';
import { Runner } from './runner.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Runner', () => {
  it('coalesces a burst of triggers into few runs, never two at once', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const r = new Runner(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs++;
        await sleep(20);
        active--;
      },
      { name: 't', minIntervalMs: 0, resyncMs: 60_000, log: silentLogger },
    );
    r.start();
    for (let i = 0; i < 50; i++) r.trigger();
    await sleep(100);
    r.stop();
    assert.equal(maxActive, 1);
    assert.ok(runs <= 3, `50 triggers became ${runs} runs`);
  });

  it('retries a failing sync with backoff, and records the error', async () => {
    let calls = 0;
    const r = new Runner(
      async () => {
        calls++;
        if (calls < 3) throw new Error(`boom ${calls}`);
      },
      { name: 't', minIntervalMs: 0, resyncMs: 60_000, log: silentLogger },
    );
    r.start();
    await sleep(2000);
    r.stop();
    assert.equal(calls, 3, 'retried until it succeeded (after 500 ms and 1 s)');
    assert.equal(r.lastError, undefined);
  });

  it('flush waits for a run that started after the call', async () => {
    let value = 0;
    const r = new Runner(
      async () => {
        await sleep(10);
        value++;
      },
      { name: 't', minIntervalMs: 0, resyncMs: 60_000, log: silentLogger },
    );
    r.start();
    const before = value;
    await r.flush();
    assert.ok(value > before);
    r.stop();
  });
});
