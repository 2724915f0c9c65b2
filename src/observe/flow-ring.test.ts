import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { FlowRecord } from './flow.js';
import { FlowRing } from './flow-ring.js';

const rec = (i: number): FlowRecord => ({ time: new Date(1_000_000 + i * 1000).toISOString(), node: 'n', verdict: 'forwarded', direction: 'egress', family: 4, protocol: 'TCP', source: { address: '10.0.0.1', port: i }, destination: { address: '10.0.0.2', port: 80 } });

describe('FlowRing', () => {
  it('keeps the newest `capacity` records in order and counts what it overwrote', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 60 }), (cap, n) => {
        const ring = new FlowRing(cap);
        for (let i = 0; i < n; i++) ring.push(rec(i));
        const kept = ring.list().map((r) => r.source.port);
        const want = Array.from({ length: Math.min(cap, n) }, (_, k) => n - Math.min(cap, n) + k);
        assert.deepEqual(kept, want);
        assert.equal(ring.seen, n);
        assert.equal(ring.overwritten, Math.max(0, n - cap));
      }),
    );
  });

  it('lists only records since a time', () => {
    const ring = new FlowRing(10);
    for (let i = 0; i < 5; i++) ring.push(rec(i));
    assert.deepEqual(ring.list(1_000_000 + 3000).map((r) => r.source.port), [3, 4]);
  });

  it('tells subscribers of each new record until they unsubscribe', () => {
    const ring = new FlowRing(2);
    const got: number[] = [];
    const off = ring.subscribe((r) => got.push(r.source.port ?? -1));
    ring.push(rec(1));
    ring.push(rec(2));
    off();
    ring.push(rec(3));
    assert.deepEqual(got, [1, 2]);
    assert.equal(ring.readers, 0);
  });
});
