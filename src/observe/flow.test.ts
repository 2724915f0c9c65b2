import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../util/user-error.js';
import { filterFromFlags, flowText, matchesFilter, mergeByTime, parseDuration, type FlowRecord } from './flow.js';

const r = (over: Partial<FlowRecord> = {}): FlowRecord => ({
  time: '2026-11-30T10:00:00.000Z',
  node: 'n1',
  verdict: 'forwarded',
  direction: 'egress',
  family: 4,
  protocol: 'TCP',
  source: { address: '10.0.0.1', port: 40000, pod: 'a/web', namespace: 'a' },
  destination: { address: '10.0.1.1', port: 80, pod: 'b/db', namespace: 'b' },
  ...over,
});

describe('flow filters', () => {
  const now = Date.parse('2026-11-30T10:00:30.000Z');
  it('parse the flags and say what is accepted when one is wrong', () => {
    assert.deepEqual(filterFromFlags({ since: '1m', pod: 'a/web', verdict: 'Dropped', protocol: 'udp', port: '53' }, now), { since: now - 60_000, pod: 'a/web', verdict: 'dropped', protocol: 'UDP', port: 53 });
    assert.throws(() => filterFromFlags({ verdict: 'denied' }, now), (e: Error) => e instanceof UserError && /forwarded or dropped/.test(e.message));
    assert.throws(() => filterFromFlags({ port: '0' }, now), UserError);
    assert.throws(() => filterFromFlags({ pod: 'web' }, now), /NAMESPACE\/POD/);
    assert.throws(() => filterFromFlags({ since: 'yesterday' }, now), /30s, 5m/);
    assert.equal(parseDuration('1.5s', 'x'), 1500);
  });

  it('match either end for pod, namespace and port; all flags must hold', () => {
    assert.equal(matchesFilter(r(), { pod: 'b/db' }), true);
    assert.equal(matchesFilter(r(), { namespace: 'a', port: 80 }), true);
    assert.equal(matchesFilter(r(), { namespace: 'a', verdict: 'dropped' }), false);
    assert.equal(matchesFilter(r(), { protocol: 'UDP' }), false);
    assert.equal(matchesFilter(r(), { since: Date.parse('2026-11-30T10:00:01.000Z') }), false);
  });
});

describe('flow text and merging', () => {
  it('prints a drop with its reason on the next line', () => {
    const text = flowText(r({ verdict: 'dropped', direction: 'ingress', dropReason: 'policy-isolated', explanation: 'ingress to b/db: BLOCKED — isolated by b/p' }));
    assert.match(text, /^10:00:00\.000 n1 DROPPED +ingress a\/web \(10\.0\.0\.1\):40000 -> b\/db \(10\.0\.1\.1\):80 TCP\n {4}policy-isolated: ingress to b\/db/);
  });

  it('merges nodes\' lists in time order', () => {
    const a = [r({ time: '2026-11-30T10:00:00.000Z', node: 'n1' }), r({ time: '2026-11-30T10:00:02.000Z', node: 'n1' })];
    const b = [r({ time: '2026-11-30T10:00:01.000Z', node: 'n2' })];
    assert.deepEqual(mergeByTime([a, b]).map((x) => x.node), ['n1', 'n2', 'n1']);
  });
});
