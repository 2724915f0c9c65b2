import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedMutex, Mutex, SharedExclusiveLock } from './mutex.js';

const tick = (ms = 1): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('locks', () => {
  it('Mutex runs holders one at a time, in order, even when one throws', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const job = (n: string, fail = false) => m.run(async () => {
      log.push(`${n}+`);
      await tick();
      log.push(`${n}-`);
      if (fail) throw new Error(n);
    });
    await Promise.allSettled([job('a'), job('b', true), job('c')]);
    assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
  });

  it('KeyedMutex serialises one key and lets other keys run concurrently', async () => {
    const m = new KeyedMutex();
    let active = 0;
    let maxActive = 0;
    const perKey = new Map<string, number>();
    const job = (k: string) => m.run(k, async () => {
      active++;
      perKey.set(k, (perKey.get(k) ?? 0) + 1);
      assert.equal(perKey.get(k), 1, `two holders of ${k}`);
      maxActive = Math.max(maxActive, active);
      await tick(2);
      perKey.set(k, (perKey.get(k) ?? 1) - 1);
      active--;
    });
    await Promise.all(['a', 'a', 'b', 'b', 'c'].map(job));
    assert.equal(maxActive, 3);
    assert.equal(m.size, 0);
  });

  it('SharedExclusiveLock: exclusive waits for shared holders and blocks later ones', async () => {
    const l = new SharedExclusiveLock();
    const log: string[] = [];
    const shared = (n: string) => l.runShared(async () => {
      log.push(`${n}+`);
      await tick(3);
      log.push(`${n}-`);
    });
    const exclusive = l.runExclusive(async () => {
      log.push('X+');
      await tick(1);
      log.push('X-');
    });
    const s1 = shared('s1');
    await Promise.all([exclusive, s1, shared('s2')]);
    // The exclusive holder saw nothing else running.
    const xi = log.indexOf('X+');
    assert.equal(log[xi + 1], 'X-');
  });
});
