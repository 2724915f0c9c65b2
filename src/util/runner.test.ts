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
    const t0 = Date.now();
    while (calls < 3 && Date.now() - t0 < 10_000) await sleep(20);
    await sleep(200); // and no more after the success
    r.stop();
    assert.equal(calls, 3, 'retried until it succeeded (after 500 ms and 1 s)');
    assert.ok(Date.now() - t0 >= 1400, 'with backoff, not at once');
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

  it('a failing sync is not spun by triggers or flushes: they wait out the backoff, and the failure is logged once', async () => {
    let calls = 0;
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (msg: string) => warnings.push(msg), child: () => log };
    const r = new Runner(
      async () => {
        calls++;
        throw new Error('nft is broken');
      },
      { name: 't', minIntervalMs: 0, resyncMs: 60_000, log },
    );
    r.start();
    const until = Date.now() + 2000;
    let flushes = 0;
    // What a CNI ADD waiting for its policy does: flush again and again.
    while (Date.now() < until) {
      await r.flush(until - Date.now()).catch(() => undefined);
      flushes++;
      r.trigger();
    }
    r.stop();
    assert.ok(calls <= 4, `${calls} runs in 2 s of flushing (backoff 0.5 s, 1 s, …)`);
    assert.equal(warnings.length, 1, `logged once: ${warnings.length}`);
    assert.ok(flushes >= 1);
  });
});

