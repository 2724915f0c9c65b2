import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AddressError, formatAddress, parseAddress, parseCidr } from './cidr.js';
import { Pool } from './pool.js';

describe('Pool', () => {
  it('never offers the network, the node (gateway) or the IPv4 broadcast address', () => {
    const p = new Pool(parseCidr('10.0.0.0/24'));
    assert.equal(formatAddress(4, p.first), '10.0.0.2');
    assert.equal(formatAddress(4, p.last), '10.0.0.254');
    assert.equal(p.size, 253n);
    for (const a of ['10.0.0.0', '10.0.0.1', '10.0.0.255', '10.0.1.0']) assert.ok(p.refusal(parseAddress(a)), a);
    assert.equal(p.refusal(parseAddress('10.0.0.2')), undefined);
    const p6 = new Pool(parseCidr('fd00::/64'));
    assert.equal(formatAddress(6, p6.first), 'fd00::2');
    assert.equal(formatAddress(6, p6.last), 'fd00::ffff:ffff:ffff:ffff');
  });

  it('refuses ranges too small to hold a pod', () => {
    assert.throws(() => new Pool(parseCidr('10.0.0.0/31')), AddressError);
    assert.throws(() => new Pool(parseCidr('fd00::/127')), AddressError);
    assert.equal(new Pool(parseCidr('10.0.0.0/30')).size, 1n);
  });

  it('allocates round-robin, wraps, and never returns a taken, reserved or out-of-range address', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('10.9.0.0/28', '10.9.0.0/29', 'fd00::/124', '10.9.0.0/30'),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
        (text, ops) => {
          const p = new Pool(parseCidr(text));
          const taken = new Set<bigint>();
          let cursor: bigint | undefined;
          for (const alloc of ops) {
            if (alloc || taken.size === 0) {
              const v = p.next(cursor, (x) => taken.has(x), taken.size);
              if (BigInt(taken.size) >= p.size) {
                assert.equal(v, undefined, 'a full pool offers nothing');
                continue;
              }
              assert.notEqual(v, undefined, 'a pool with room offers something');
              const got = v as bigint;
              assert.ok(!taken.has(got), 'no duplicate');
              assert.equal(p.refusal({ family: p.family, value: got }), undefined, 'assignable');
              taken.add(got);
              cursor = got;
            } else {
              const first = [...taken][0] as bigint;
              taken.delete(first);
            }
          }
        },
      ),
    );
  });

  it('does not reuse a just-freed address before the range wraps', () => {
    const p = new Pool(parseCidr('10.0.0.0/24'));
    const taken = new Set<bigint>();
    const a = p.next(undefined, (x) => taken.has(x), 0) as bigint;
    taken.add(a);
    const b = p.next(a, (x) => taken.has(x), 1) as bigint;
    taken.add(b);
    taken.delete(a);
    const c = p.next(b, (x) => taken.has(x), 1) as bigint;
    assert.equal(c, b + 1n);
  });
});
