import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AddressError, canonicalAddress, cidrContains, cidrsOverlap, formatAddress, parseAddress, parseCidr } from './cidr.js';

describe('cidr', () => {
  it('parses and canonicalises both families', () => {
    assert.deepEqual(parseCidr('10.244.1.0/24').text, '10.244.1.0/24');
    assert.equal(parseCidr('fd00:0244:0001::/64').text, 'fd00:244:1::/64');
    assert.equal(canonicalAddress('fd00:0::05'), 'fd00::5');
  });

  it('refuses host bits, naming the network address', () => {
    assert.throws(() => parseCidr('10.244.1.5/24'), (e: unknown) => e instanceof AddressError && e.message.includes('10.244.1.0'));
  });

  it('is strict about what an address is', () => {
    for (const bad of ['10.1', '010.0.0.1x', '0x0a.0.0.1', 'fe80::1%eth0', '10.0.0.256', '', 'abc']) {
      assert.throws(() => parseAddress(bad), AddressError, bad);
    }
    assert.throws(() => parseCidr('10.0.0.0/33'), AddressError);
    assert.throws(() => parseCidr('10.0.0.0'), AddressError);
  });

  it('round-trips every IPv4 and IPv6 value', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), (v) => assert.equal(parseAddress(formatAddress(4, v)).value, v)));
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => assert.equal(parseAddress(formatAddress(6, v)).value, v)));
  });

  it('contains and overlaps', () => {
    const c = parseCidr('10.244.0.0/16');
    assert.ok(cidrContains(c, parseAddress('10.244.255.255')));
    assert.ok(!cidrContains(c, parseAddress('10.245.0.0')));
    assert.ok(!cidrContains(c, parseAddress('::1')));
    assert.ok(cidrsOverlap(c, parseCidr('10.244.3.0/24')));
    assert.ok(!cidrsOverlap(c, parseCidr('10.245.0.0/24')));
  });
});
